"""KOMBIT's Sags- og Dokumentindeks (SF1470 v6): the SOAP contract, the hub's client and its local service."""
