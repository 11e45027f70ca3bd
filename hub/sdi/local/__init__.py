"""The hub's local stand-ins for KOMBIT's case index (SF1470 v6) and its STS, for tests and for `hub serve` without
a real index: the index's store (`hub.sdi.local.index`) and SOAP edge (`hub.sdi.local.service`), the STS
(`hub.sdi.local.sts`), and the one app that serves both with their certificates (`hub.sdi.local.app`). They use the
adapter side of `hub.sdi` (contract, rules, OIOIDWS); the adapter side never uses them."""
