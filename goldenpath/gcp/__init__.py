"""Google APIs, one module per API. The only place ``google.cloud.*`` is imported, and lazily."""
