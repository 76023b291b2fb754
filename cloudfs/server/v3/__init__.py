"""The Cloudreve 3.8.3 dialect (``/api/v3``): the gin-like app and its
runtime, the explorer, uploads, downloads, the KV cache and cookie sessions."""
