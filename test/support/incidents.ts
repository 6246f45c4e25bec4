/** The incident that tests and benchmarks declare unless they need another: one home for its fields. */
export const checkoutIncident = {
  projectId: 'payments',
  title: 'Checkout latency above SLO',
  serviceName: 'checkout',
  severity: 'SEV2' as const,
  environment: 'production',
  tags: ['latency'],
};
