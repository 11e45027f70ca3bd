"""HL7 v2: messages, ACKs, and the MLLP transport they travel on."""
