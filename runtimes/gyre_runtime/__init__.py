"""What runs inside Gyre pods: profile, train, serve, drift, fetch."""
