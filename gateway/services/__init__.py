"""Service controls the gateway applies to requests it lets through (pure, no mitmproxy): forced safe search, the
sign-in locks on Google and Microsoft's login hosts, and sites' minimum ages for sign-ups."""
