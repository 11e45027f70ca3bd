"""The V2-to-FHIR IG's vocabulary maps, read from the standards store as HL7 publishes them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from hub.flows.hl7v2 import Hl7v2Flow
from hub.hl7v2.ig_tables import Coding, IgTables
from hub.store.db import make_engine, migrate
from hub.store.encounters import EncounterStore
from tests.flows.test_hl7v2 import adt

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


@pytest.fixture(scope="module")
def tables(data_root: Path) -> IgTables:
    return IgTables.in_store(data_root / "standards")


def test_a_vocabulary_map_is_read_as_the_ig_writes_it(tables: IgTables) -> None:
    classes = tables.concepts("PatientClass[EncounterClass]")
    assert classes["I"] == Coding(ACT, "IMP", "inpatient encounter")  # its display one column early
    assert classes["R"] == Coding("http://terminology.hl7.org/CodeSystem/v2-0004", "R", "Recurring patient")
    assert "" not in classes and "VR" not in classes  # FHIR codes no v2 code maps to are not read
    assert tables.concepts("AdministrativeSex")["F"] == Coding("http://hl7.org/fhir/administrative-gender",
                                                               "female", "Female")
    assert tables.concepts("FillerStatusCodes[Appointment]")["Started"].code == "checked-in"
    assert "Blocked" not in tables.concepts("FillerStatusCodes[Appointment]")  # mapped to nothing
    with pytest.raises(LookupError):
        tables.concepts("NoSuchTable")


def test_the_encounter_class_is_the_igs(tables: IgTables, tmp_path: Path) -> None:
    engine: Engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    migrate(engine)
    flow = Hl7v2Flow(engine, tables=tables)
    flow.receive(adt(control_id="C1", patient_class="R").encode("iso-8859-1"))
    (stay,) = EncounterStore(engine).stays()
    assert stay["class"] == {"system": "http://terminology.hl7.org/CodeSystem/v2-0004", "code": "R",
                             "display": "Recurring patient"}
