"""School web gateway: policy, decisions, identity and store for a mitmproxy-based school filter."""
