"""`gateway health`: what a monitoring system asks of a running gateway, as OK, WARNING or CRITICAL."""
