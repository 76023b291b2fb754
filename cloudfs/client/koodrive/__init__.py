"""The KooDrive backend (Huawei Cloud KooDrive's ``/koodrive/ose/v1`` file API).

One module per concern: :mod:`.codes` (the 13000xxx code table),
:mod:`.signing` (the enterprise HMAC app signature), :mod:`.auth` (the three
logins), :mod:`.wire` (requests, envelopes, retries), :mod:`.ids` (the
path -> id cache an ID-addressed API needs), :mod:`.dialect` (the
operations), :mod:`.detect` (recognising a KooDrive server) and
:mod:`.space` (capacity and the tenant usage reports).
"""
