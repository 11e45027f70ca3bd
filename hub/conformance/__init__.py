"""Conformance runs: validate files of every format the hub knows, report as text, JSON or JUnit; and run MedCom's
TestScripts on the messages a system sends, reported as a FHIR TestReport (`testscript`)."""
