"""The hub's integration API (/api/v1): products, stock, sales, devices and webhooks over HTTP."""
