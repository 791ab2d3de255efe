"""E-receipts: a sale's receipt on the customer's phone, found by the secret in its QR link."""
