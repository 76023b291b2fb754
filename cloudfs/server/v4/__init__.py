"""The Cloudreve 4.x dialect (``/api/v4``): routes, file operations, uploads,
downloads, path locks, ``cloudreve://`` URIs and the JSON envelope."""
