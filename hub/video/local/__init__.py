"""The hub's VDX-compatible service: the subset of MedCom's VDX Booking API v2 that the hub uses.

When no real VDX is configured, `hub serve` runs this service on loopback and the hub's VDX client
(`hub.video.client`) speaks plain HTTP to it, exactly as it would to VDX. It therefore follows
`video-api-v2.yaml` where the hub depends on it: the `meeting` and `scheduling-info` shapes, the rules for when
a meeting may be changed or deleted (driven by a provisioning state computed from a movable clock),
URI/PIN/short-link generation, the `detailedError` body with VDX's numeric codes, and an OAuth2
client-credentials token endpoint standing in for Keycloak. State is held in memory per app instance.

The modules, each for one concern:

- `clock`: the movable service clock and VDX's date-time format;
- `errors`: `VdxError` and the `detailedError` body every failure is answered with;
- `models`: the request bodies and the checks on their fields (VDX codes 10, 25, 35);
- `store`: the meetings kept, their provisioning states, and PIN, URI and short-id generation;
- `tokens`: the OAuth2 client-credentials tokens;
- `routes`: HAL rendering, the endpoints and `create_vdx_app`.
"""

from hub.video.local.clock import VdxClock
from hub.video.local.errors import VdxError
from hub.video.local.routes import create_vdx_app

__all__ = ["VdxClock", "VdxError", "create_vdx_app"]
