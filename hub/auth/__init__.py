"""Who may do what: OAuth2 bearer tokens (JWT), SMART v2 scopes, the hub's own issuer and its clients.

- `scopes`: SMART v2 scopes (`system/Appointment.cruds`) and the hub's named ones (`hub/validate`), and whether a
  token's scopes permit what an endpoint needs.
- `tokens`: the hub's own issuer (signing, JWKS) and the verifier of tokens from every trusted issuer.
- `secrets`: client secrets hashed for storage, and checked.
- `assertions`: SMART's `private_key_jwt` client authentication.

Pure: the keys, clients and issuers come from the caller (`hub.store.clients`, `hub.wiring`).
"""
