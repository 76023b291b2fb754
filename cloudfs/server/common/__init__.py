"""What both dialects share: one data directory's database and blob store
(:mod:`.db`, :mod:`.store`), hashids (:mod:`.ids`), passwords, TOTP and tokens
(:mod:`.auth`), signed URLs (:mod:`.signing`), gin's request binding
(:mod:`.binding`) and the server's configuration and state (:mod:`.state`)."""
