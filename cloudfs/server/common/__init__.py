"""What both dialects share: one data directory's database and blob store
(:mod:`.db`, :mod:`.store`), hashids (:mod:`.ids`), passwords, TOTP and tokens
(:mod:`.auth`), URL signatures (:mod:`.signing`), gin's request binding
(:mod:`.binding`), blob bytes over HTTP (:mod:`.blobs`), what Go writes
(:mod:`.goformat`: JSON, times, gin's 404; :mod:`.gourl`: ``net/url``) and the
server's configuration and state (:mod:`.state`).  Nothing here imports a dialect."""
