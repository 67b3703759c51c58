"""The local kubelet: pods simulated or run as local processes, their state and probes."""
