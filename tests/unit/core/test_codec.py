from datetime import UTC, datetime
from decimal import Decimal

from billing.catalog import PriceSpec, RateType, Tier, TierMode
from billing.contracts import (
    Commit,
    CommitType,
    Contract,
    Credit,
    Override,
    OverrideType,
    QuantityChange,
    Subscription,
)
from models.codec import decode, to_json

T = datetime(2026, 3, 1, tzinfo=UTC)


def test_contract_terms_round_trip_losslessly() -> None:
    contract = Contract(
        id="k",
        customer_id="c",
        rate_card_id="rc",
        starting_at=T,
        overrides=(
            Override(
                "p",
                T,
                OverrideType.MULTIPLIER,
                multiplier=Decimal("0.80"),
                pricing_group_values=(("model", "gpt-5"),),
            ),
            Override(
                "p",
                T,
                OverrideType.OVERWRITE,
                overwrite_rate=PriceSpec(
                    RateType.TIERED,
                    tiers=(Tier(Decimal("0.01"), Decimal(10)), Tier(Decimal("0.005"))),
                    tier_mode=TierMode.VOLUME,
                ),
            ),
        ),
        credits=(
            Credit(
                "cr",
                "Trial",
                Decimal("20.00"),
                T,
                T.replace(month=4),
                applicable_product_ids=frozenset({"p", "q"}),
            ),
        ),
        commits=(
            Commit(
                "cm",
                "Q1",
                "pc",
                CommitType.PREPAID,
                Decimal("100.00"),
                T,
                T.replace(month=6),
                priority=1,
            ),
        ),
        subscriptions=(Subscription("ps", (QuantityChange(T, Decimal(3)),), proration=False),),
    )
    stored = to_json(contract)
    assert stored["credits"][0]["amount"] == "20.00"
    assert stored["credits"][0]["applicable_product_ids"] == ["p", "q"]
    assert decode(Contract, stored) == contract
