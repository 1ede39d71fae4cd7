"""The filter self-test: real requests through the running proxy, as each group, per DfE/UKSIC category."""
