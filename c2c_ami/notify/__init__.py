"""What goes out: CDR rows and signed, durable webhooks, and their subscriptions."""
