"""What a Linux gateway machine needs around the proxy: nftables rules for transparent mode and systemd units."""
