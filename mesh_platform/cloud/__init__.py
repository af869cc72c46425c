"""The clouds of the prod environment: where products live (stores) and what the platform
provisions for them (infrastructure, reconciled like Terraform)."""


class CloudError(RuntimeError):
    """A cloud could not be reached or refused a call; the message names the endpoint. Each
    cloud's module raises its own subclass (cloud.aws.AwsError, ...)."""
