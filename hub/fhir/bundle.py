"""Bundle rules the definitions do not carry, as the HL7 validator's BundleValidator checks them, in its words.

- Except in transactions and batches (and their responses), an entry with a resource has a `fullUrl`: the identity
  of the resource in the entry.
- A `fullUrl` is an absolute URL (`urn:uuid:…`, `urn:oid:…`, `http(s)://…`), not a relative `Patient/1`.
- A RESTful `fullUrl` (`…/Patient/1`, its type a resource type) names the entry's resource: its type and id.
Each finding is at the entry (`Bundle.entry[n]`), as the reference places it, and an error as there, but one:

Written policy: a relative `fullUrl` is a warning, not the reference's error. MedCom's own certification material
writes them: the 42 fixtures of the HospitalNotification TestScript package (`"fullUrl": "Encounter/…"`) and the
conversion example `Flow2-Acknowledgement_Ex_to_OIOXML.xml`; as an error it would refuse MedCom's certification
messages. The finding is kept, in the reference's words, so a tester sees it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hub.core.outcome import Outcome

_WITHOUT_FULLURL = frozenset({"transaction", "batch", "transaction-response", "batch-response"})
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # a URI scheme
_RESTFUL = re.compile(r"^https?://.+/(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(/_history/[^/]+)?$")


def check_bundle(bundle: dict[str, Any], out: Outcome, is_resource_type: Callable[[str], bool],
                 where: str = "Bundle") -> None:
    """The entries' `fullUrl`s of a Bundle (what is not a Bundle is left alone); `is_resource_type` says whether
    a RESTful URL's type segment names a resource type (`…/Obervation/1` is no RESTful URL at all)."""
    if bundle.get("resourceType") != "Bundle":
        return
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return
    needs_full_url = bundle.get("type") not in _WITHOUT_FULLURL
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            continue
        at = f"{where}.entry[{n}]"
        resource, full_url = entry["resource"], entry.get("fullUrl")
        if not isinstance(full_url, str):
            if needs_full_url:
                out.error("invalid", "Except for transactions and batches, each entry in a Bundle must have a "
                          "fullUrl which is the identity of the resource in the entry", at, rule="bundle-fullurl")
            continue
        if not _ABSOLUTE.match(full_url):
            out.add("warning", "invalid", f"The fullUrl must be an absolute URL (not '{full_url}')", at,
                    rule="bundle-fullurl")
            continue
        restful = _RESTFUL.match(full_url)
        if restful and is_resource_type(restful["type"]) and resource.get("id") is not None and (
                restful["type"] != resource.get("resourceType") or restful["id"] != resource.get("id")):
            out.error("invalid", f"The fullUrl '{full_url}' does not match the entry's resource "
                      f"{resource.get('resourceType')}/{resource.get('id')}", at, rule="bundle-fullurl")
