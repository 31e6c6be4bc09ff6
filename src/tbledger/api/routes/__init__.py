"""The API's routers, one module per area; each route parses, checks the caller, calls one
library function and renders the result."""
