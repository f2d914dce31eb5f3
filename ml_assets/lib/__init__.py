"""Pure logic: data, validation, features, training, evaluation, drift, registry helpers. Never imports dagster."""
