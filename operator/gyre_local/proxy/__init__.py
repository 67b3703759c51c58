"""Local listeners for Services and HTTPRoutes that forward to ready pods."""
