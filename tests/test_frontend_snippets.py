"""The frontend snippets (``frontend_snippets/``) against the schema, without a network.

- every ``*.graphql`` file and every GraphQL document written in a script after the marker
  ``/* GraphQL */`` (a template literal, without interpolation) validates against
  ``schema/schema.graphql``, with named operations;
- the copies in the React, fetch and server snippets are, once printed, the documents of
  ``operations/<Name>.graphql``: the two never drift;
- browser code (``react/``, ``fetch/`` and the embed script beside them) uses only what a
  customer token may, never mints a token nor names an admin key, and no snippet holds a key;
- the Python minting example posts ``createCustomerToken`` with the admin key and hands the
  browser the token only.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    parse,
    print_ast,
    validate,
)
from starlette.applications import Starlette

from tests.api.support import customer, data
from tests.conftest import Env

ROOT = Path(__file__).resolve().parents[1]
SNIPPETS = ROOT / "frontend_snippets"
OPERATIONS = SNIPPETS / "operations"

MARKER = re.compile(r"/\* GraphQL \*/\s*`(.*?)`", re.DOTALL)
SCRIPT_SUFFIXES = (".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx")
EXPECTED_OPERATIONS = {
    "DraftInvoices",
    "DraftInvoiceUpdated",
    "Usage",
    "UsageUpdated",
    "BudgetAlerts",
    "AlertStateChanged",
    "CreateBudgetAlert",
    "ArchiveAlert",
    "CreateCustomerToken",
}
# Root fields a customer token may use (docs/api.md, Access and Subscriptions).
CUSTOMER_TOKEN_FIELDS = {
    "customer",
    "invoice",
    "costPreview",
    "createAlert",
    "archiveAlert",
    "usageUpdated",
    "draftInvoiceUpdated",
    "balanceUpdated",
    "alertStateChanged",
    "__typename",
}
ADMIN_KEY = re.compile(r"ml_(?:live|test)_[A-Za-z0-9_-]{6,}")
# Browser code may explain that tokens are minted server-side, but never hold the means to.
NOT_IN_BROWSER = ("createApiKey", "METERLINE_ADMIN_KEY")


def files(*suffixes: str, under: Path = SNIPPETS, recursive: bool = True) -> list[Path]:
    found = under.rglob("*") if recursive else under.glob("*")
    return sorted(
        path
        for path in found
        if path.is_file() and path.name.endswith(suffixes) and "node_modules" not in path.parts
    )


def relative(path: Path) -> str:
    return path.relative_to(SNIPPETS).as_posix()


def embedded(path: Path) -> list[str]:
    """The documents written after ``/* GraphQL */`` in a script."""
    return MARKER.findall(path.read_text(encoding="utf-8"))


def embedded_documents() -> list[tuple[str, str]]:
    return [
        (f"{relative(path)}#{index}", text)
        for path in files(*SCRIPT_SUFFIXES)
        for index, text in enumerate(embedded(path), 1)
    ]


def browser_files() -> list[Path]:
    """Code that runs in a browser: the React and fetch snippets, the embed script."""
    return [
        *files(*SCRIPT_SUFFIXES, under=SNIPPETS / "react"),
        *files(*SCRIPT_SUFFIXES, under=SNIPPETS / "fetch"),
        *files(*SCRIPT_SUFFIXES, ".html", under=SNIPPETS, recursive=False),
    ]


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return build_schema((ROOT / "schema" / "schema.graphql").read_text(encoding="utf-8"))


def operations_of(document: DocumentNode) -> list[OperationDefinitionNode]:
    return [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]


def assert_valid(schema: GraphQLSchema, text: str) -> DocumentNode:
    document = parse(text)
    errors = validate(schema, document)
    assert errors == [], [error.message for error in errors]
    operations = operations_of(document)
    assert operations, "no operation in the document"
    assert all(op.name is not None for op in operations), "every operation is named"
    return document


def normalized(text: str) -> str:
    return print_ast(parse(text))


@pytest.mark.parametrize("path", files(".graphql"), ids=relative)
def test_graphql_file_is_valid(schema: GraphQLSchema, path: Path) -> None:
    document = assert_valid(schema, path.read_text(encoding="utf-8"))
    if path.parent == OPERATIONS:
        (operation,) = operations_of(document)
        assert operation.name is not None and operation.name.value == path.stem


@pytest.mark.parametrize(
    "text", [text for _, text in embedded_documents()], ids=[i for i, _ in embedded_documents()]
)
def test_embedded_document_is_valid(schema: GraphQLSchema, text: str) -> None:
    assert "${" not in text, "no interpolation in a GraphQL template literal"
    assert_valid(schema, text)


def test_operations_are_found() -> None:
    assert {path.stem for path in files(".graphql", under=OPERATIONS)} >= EXPECTED_OPERATIONS
    assert embedded_documents(), "no /* GraphQL */ document found in a script"
    assert embedded(SNIPPETS / "react" / "operations.js")


def operation_file(name: str) -> Path:
    path = OPERATIONS / f"{name}.graphql"
    assert path.is_file(), f"{name} has no operations/{name}.graphql"
    return path


@pytest.mark.parametrize(
    "path",
    [
        *files(*SCRIPT_SUFFIXES, under=SNIPPETS / "react"),
        *files(*SCRIPT_SUFFIXES, under=SNIPPETS / "fetch"),
        *files(*SCRIPT_SUFFIXES, under=SNIPPETS / "server"),
    ],
    ids=relative,
)
def test_script_copies_match_the_operation_files(path: Path) -> None:
    for text in embedded(path):
        (operation,) = operations_of(parse(text))
        assert operation.name is not None
        expected = operation_file(operation.name.value).read_text(encoding="utf-8")
        assert normalized(text) == normalized(expected), f"{operation.name.value} drifted"


def python_string(path: Path, name: str) -> str:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name for target in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, str)
            return value
    raise AssertionError(f"{path.name} assigns no {name}")


def test_python_minting_copy_matches_the_operation_file() -> None:
    text = python_string(SNIPPETS / "server" / "mint_token.py", "CREATE_CUSTOMER_TOKEN")
    assert normalized(text) == normalized(operation_file("CreateCustomerToken").read_text())


def test_no_snippet_holds_an_api_key() -> None:
    offenders = [
        f"{relative(path)}: {match}"
        for path in files("")
        if path.suffix not in {".png", ".jpg", ".ico", ".woff", ".woff2"}
        for match in ADMIN_KEY.findall(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert offenders == []


def test_browser_code_neither_mints_tokens_nor_names_admin_keys() -> None:
    assert browser_files(), "no browser snippet found"
    offenders = [
        f"{relative(path)}: {word}"
        for path in browser_files()
        for word in NOT_IN_BROWSER
        if word in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_browser_documents_use_only_what_a_customer_token_may() -> None:
    used: dict[str, set[str]] = {}
    for path in browser_files():
        for text in embedded(path):
            for operation in operations_of(parse(text)):
                fields = {
                    selection.name.value
                    for selection in operation.selection_set.selections
                    if isinstance(selection, FieldNode)
                }
                used[relative(path)] = used.get(relative(path), set()) | fields
    assert used, "no GraphQL document in browser code"
    assert {path: fields - CUSTOMER_TOKEN_FIELDS for path, fields in used.items()} == {
        path: set() for path in used
    }


NODE = shutil.which("node")  # Node.js is on every machine this project runs on


@pytest.mark.parametrize("path", files(".js", ".mjs"), ids=relative)
def test_script_parses_as_an_es_module(path: Path, tmp_path: Path) -> None:
    assert NODE, "Node.js is needed to check the browser snippets"
    copy = tmp_path / f"{path.stem}.mjs"
    copy.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    result = subprocess.run(
        [NODE, "--check", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_the_embed_protocol_client_keeps_subscriptions_alive() -> None:
    """tests/js/embed_client.mjs drives the embed module's graphql-transport-ws client
    against a scripted socket and a manual clock: pings and the 10 s pong timeout,
    reconnect and resubscribe, backoff after server errors, final error codes and fatal
    close codes (the real socket is exercised by tests/e2e/test_embed_browser.py)."""
    assert NODE, "Node.js is needed to run the embed client's checks"
    script = ROOT / "tests" / "js" / "embed_client.mjs"
    result = subprocess.run([NODE, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout


# --- the Python minting example, against the real app ---------------------------------------


@pytest.fixture(scope="module")
def mint_token() -> ModuleType:
    """The example as a module (executed from source: no __pycache__ in the snippets)."""
    path = SNIPPETS / "server" / "mint_token.py"
    module = ModuleType("snippet_mint_token")
    module.__file__ = str(path)
    exec(compile(path.read_text(encoding="utf-8"), path, "exec"), module.__dict__)
    return module


ENDPOINT = "http://meterline/graphql"  # the env fixture's app, in process
READ_CUSTOMER = "query($id: ID!) { customer(id: $id) { id draftInvoices { total } } }"


async def test_a_minted_token_reads_its_customer(mint_token: ModuleType, env: Env) -> None:
    customer_id = await customer(env)
    minted = await mint_token.mint_customer_token(
        customer_id, ttl_seconds=600, endpoint=ENDPOINT, admin_key=env.admin_key, client=env.client
    )
    assert minted["customerId"] == customer_id and minted["token"].startswith("ml_ct_")
    found = await data(env, READ_CUSTOMER, minted["token"], id=customer_id)
    assert found["customer"]["id"] == customer_id


async def test_minting_raises_meterline_error_codes(mint_token: ModuleType, env: Env) -> None:
    with pytest.raises(mint_token.MeterlineError) as raised:
        await mint_token.mint_customer_token(
            "cus_missing", endpoint=ENDPOINT, admin_key=env.admin_key, client=env.client
        )
    assert raised.value.code == "NOT_FOUND"
    with pytest.raises(mint_token.MeterlineError) as raised:
        await mint_token.mint_customer_token(
            "cus_missing", endpoint=ENDPOINT, admin_key=env.read_key, client=env.client
        )
    assert raised.value.code == "FORBIDDEN"
    with pytest.raises(ValueError):
        await mint_token.mint_customer_token("cus_1", admin_key=env.admin_key, ttl_seconds=86_401)


async def test_the_token_endpoint_hands_out_the_token_only(
    mint_token: ModuleType, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METERLINE_ADMIN_KEY", env.admin_key)
    customer_id = await customer(env)

    async def logged_in(request: Any) -> str | None:
        return customer_id if request.headers.get("cookie") == "session=ok" else None

    route = mint_token.token_route(logged_in, endpoint=ENDPOINT, client=env.client)
    transport = httpx.ASGITransport(app=Starlette(routes=[route]))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as browser:
        assert (await browser.get("/api/meterline-token")).status_code == 401
        answer = await browser.get("/api/meterline-token", headers={"cookie": "session=ok"})
    assert answer.status_code == 200 and answer.json()["customerId"] == customer_id
    assert answer.headers["cache-control"] == "no-store"
    assert env.admin_key not in answer.text
