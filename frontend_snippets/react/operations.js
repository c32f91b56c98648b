// The GraphQL operations of the hooks, word for word those of ../operations/*.graphql
// (tests/test_frontend_snippets.py validates them against the schema and checks they have
// not drifted). The GraphQL comment before each literal lets editors highlight it and the
// test find it.
//
// Everything here works with a customer token. Money and quantities (`Decimal`) arrive as
// strings ("12.50"): display them as they are, never through JavaScript numbers.

export const DRAFT_INVOICES = /* GraphQL */ `
  query DraftInvoices($customerId: ID!) {
    customer(id: $customerId) {
      id
      draftInvoices {
        contractId
        customerId
        currency
        startingAt
        endingBefore
        status
        subtotal
        total
        lateEvents
        lines {
          type
          productId
          name
          quantity
          unitPrice
          amount
          group
          startingAt
          endingBefore
        }
        unratedUsage {
          productId
          group
          quantity
          reason
        }
      }
    }
  }
`;

export const DRAFT_INVOICE_UPDATED = /* GraphQL */ `
  subscription DraftInvoiceUpdated($customerId: ID!) {
    draftInvoiceUpdated(customerId: $customerId) {
      contractId
      customerId
      currency
      startingAt
      endingBefore
      status
      subtotal
      total
      lateEvents
      lines {
        type
        productId
        name
        quantity
        unitPrice
        amount
        group
        startingAt
        endingBefore
      }
      unratedUsage {
        productId
        group
        quantity
        reason
      }
    }
  }
`;

export const USAGE = /* GraphQL */ `
  query Usage(
    $customerId: ID!
    $billableMetricId: ID!
    $startingAt: DateTime!
    $endingBefore: DateTime!
    $windowSize: UsageWindow! = DAY
    $groupKey: [String!]
  ) {
    customer(id: $customerId) {
      id
      usage(
        billableMetricId: $billableMetricId
        startingAt: $startingAt
        endingBefore: $endingBefore
        windowSize: $windowSize
        groupKey: $groupKey
      ) {
        startingAt
        endingBefore
        group
        quantity
      }
    }
  }
`;

export const USAGE_UPDATED = /* GraphQL */ `
  subscription UsageUpdated(
    $customerId: ID!
    $billableMetricId: ID!
    $startingAt: DateTime!
    $endingBefore: DateTime!
    $windowSize: UsageWindow! = DAY
    $groupKey: [String!]
  ) {
    usageUpdated(customerId: $customerId) {
      id
      usage(
        billableMetricId: $billableMetricId
        startingAt: $startingAt
        endingBefore: $endingBefore
        windowSize: $windowSize
        groupKey: $groupKey
      ) {
        startingAt
        endingBefore
        group
        quantity
      }
    }
  }
`;

export const BUDGET_ALERTS = /* GraphQL */ `
  query BudgetAlerts($customerId: ID!) {
    customer(id: $customerId) {
      id
      alerts {
        id
        name
        alertType
        threshold
        customerId
        billableMetricId
        groupKey
        groupValues
        archivedAt
        statuses {
          customerId
          group
          state
        }
      }
    }
  }
`;

export const ALERT_STATE_CHANGED = /* GraphQL */ `
  subscription AlertStateChanged($customerId: ID!) {
    alertStateChanged(customerId: $customerId) {
      id
      name
      alertType
      threshold
      customerId
      billableMetricId
      groupKey
      groupValues
      archivedAt
      statuses {
        customerId
        group
        state
      }
    }
  }
`;

export const CREATE_BUDGET_ALERT = /* GraphQL */ `
  mutation CreateBudgetAlert($input: CreateAlertInput!) {
    createAlert(input: $input) {
      id
      name
      alertType
      threshold
      customerId
      billableMetricId
      groupKey
      groupValues
      archivedAt
      statuses {
        customerId
        group
        state
      }
    }
  }
`;

export const ARCHIVE_ALERT = /* GraphQL */ `
  mutation ArchiveAlert($id: ID!) {
    archiveAlert(id: $id) {
      id
      archivedAt
    }
  }
`;
