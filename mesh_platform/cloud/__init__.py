"""The clouds of the prod environment: where products live (stores) and what the platform
provisions for them (infrastructure, reconciled like Terraform)."""
