"""Django database engine with Entra ID tokens: ``"ENGINE": "pgentra.django"``.

    DATABASES = {
        "default": {
            "ENGINE": "pgentra.django",
            # Each of these may be left out: the AZURE_POSTGRESQL_* variables that Service
            # Connector sets (HOST, NAME, USER, PORT, CONNECTIONSTRING...) fill the gaps.
            "NAME": "app",
            "HOST": "myserver.postgres.database.azure.com",
            "USER": "aad_app",
            # No PASSWORD: every new connection gets a current token.
            "OPTIONS": {"sslmode": "require", "client_id": "<user-assigned identity>"},
        }
    }

OPTIONS may carry pgentra's connector settings (prefix, connection_string, credential,
client_id, tenant_id, client_secret, scope, allow_insecure, timeout, authority_host,
certificate_path, federated_token_file), directly or under ``"pgentra": {...}``; they are
removed before Django passes OPTIONS to the driver. Django's own connection pool
(OPTIONS["pool"]) is not supported: it would keep the first token.
"""
