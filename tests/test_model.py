"""The data model: /0 /1 /3 /5 as the OMA definitions give them, and loading more from DDF XML."""

from pathlib import Path as FilePath

import pytest

from lwm2m_edu.model import (
    DEFAULT_MODEL,
    Model,
    ModelError,
    ObjectDef,
    ObjectLink,
    Operations,
    ResourceDef,
    ResourceType,
    load_object_xml,
)
from lwm2m_edu.paths import Path

R, W, RW, E, NO = Operations.R, Operations.W, Operations.RW, Operations.E, Operations.NONE
T = ResourceType

# The mandatory resources of each object, with type and operations, as the OMA tables list them
# (reference/lwm2m-core.md §3; object5.md §1.2).
MANDATORY = {
    0: {0: (T.STRING, NO), 1: (T.BOOLEAN, NO), 2: (T.INTEGER, NO), 3: (T.OPAQUE, NO),
        4: (T.OPAQUE, NO), 5: (T.OPAQUE, NO)},
    1: {0: (T.INTEGER, R), 1: (T.INTEGER, RW), 6: (T.BOOLEAN, RW), 7: (T.STRING, RW),
        8: (T.NONE, E)},
    3: {4: (T.NONE, E), 11: (T.INTEGER, R), 16: (T.STRING, R)},
    5: {0: (T.OPAQUE, W), 1: (T.STRING, RW), 2: (T.NONE, E), 3: (T.INTEGER, R),
        5: (T.INTEGER, R), 9: (T.INTEGER, R)},
}  # fmt: skip


@pytest.mark.parametrize("object_id", sorted(MANDATORY))
def test_every_mandatory_resource_is_present_with_its_type_and_operations(object_id):
    obj = DEFAULT_MODEL[object_id]
    found = {r.id: (r.type, r.operations) for r in obj.mandatory_resources}
    assert found == MANDATORY[object_id]


def test_object_instances_and_mandatory_flags():
    assert [(o.id, o.multiple, o.mandatory) for o in DEFAULT_MODEL] == [
        (0, True, True), (1, True, True), (3, False, True), (5, False, False),
    ]  # fmt: skip


def test_error_code_is_the_mandatory_multiple_resource_of_device():
    assert DEFAULT_MODEL[3][11].multiple and DEFAULT_MODEL[3][11].mandatory


def test_firmware_update_is_version_1_1_with_automatic_upgrade_from_1_2():
    fw = DEFAULT_MODEL[5]
    assert fw.version == "1.1"
    assert sorted(fw.resources) == [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    assert fw[14].since == "1.2" and fw[14].type is T.BOOLEAN
    assert fw[8].multiple and fw[8].range == "0..5"


def test_lookup_by_path_finds_resource_and_resource_instance():
    assert DEFAULT_MODEL.resource(Path("/5/0/3")).name == "State"
    assert DEFAULT_MODEL.resource(Path("/3/0/11/0")).name == "Error Code"
    assert DEFAULT_MODEL.resource(Path("/3/0")) is None
    assert DEFAULT_MODEL.resource(Path("/9999/0/0")) is None


def test_unknown_object_and_resource_raise_model_errors_that_name_them():
    with pytest.raises(ModelError, match="no object /42"):
        DEFAULT_MODEL[42]
    with pytest.raises(ModelError, match=r"/5 \(Firmware Update\) has no resource 4"):
        DEFAULT_MODEL[5][4]


def test_duplicate_resource_ids_are_refused():
    res = ResourceDef(1, "A", R, T.INTEGER)
    with pytest.raises(ModelError, match="defined twice"):
        ObjectDef.of(9, "x", "1.0", multiple=False, mandatory=False, resources=[res, res])


def test_with_objects_adds_without_changing_the_original():
    extra = ObjectDef.of(3442, "Test", "1.0", multiple=True, mandatory=False, resources=[])
    model = DEFAULT_MODEL.with_objects(extra)
    assert 3442 in model and 3442 not in DEFAULT_MODEL
    assert isinstance(model, Model)


def test_operations_say_what_a_server_may_do():
    assert RW.readable and RW.writable and not RW.executable
    assert E.executable and not E.readable
    assert not NO.readable and not NO.writable


def test_object_link_text_form():
    assert str(ObjectLink(66, 0)) == "66:0"
    assert ObjectLink.parse("66:0") == ObjectLink(66, 0)
    assert ObjectLink(3, 0).path == Path("/3/0")
    with pytest.raises(ModelError, match="OID:IID"):
        ObjectLink.parse("66")
    with pytest.raises(ModelError, match=r"0\.\.65535"):
        ObjectLink(70000, 0)


# -- against the official OMA definitions -------------------------------------------------------

OMA = FilePath(__file__).resolve().parents[2] / "shared" / "oma-objects"
VERSION_1_1 = {0: "0-1_1.xml", 1: "1-1_1.xml", 3: "3-1_1.xml", 5: "5-1_1.xml"}
needs_oma = pytest.mark.skipif(
    not OMA.is_dir(), reason="the OMA XML files are not beside the project"
)


@needs_oma
@pytest.mark.parametrize("object_id", sorted(VERSION_1_1))
def test_model_matches_the_oma_1_1_definition(object_id):
    official = load_object_xml(OMA / VERSION_1_1[object_id])
    ours = DEFAULT_MODEL[object_id]
    assert (ours.id, ours.version, ours.multiple, ours.mandatory) == (
        official.id,
        official.version,
        official.multiple,
        official.mandatory,
    )
    for rid, theirs in official.resources.items():
        mine = ours[rid]
        assert (mine.type, mine.multiple, mine.mandatory) == (
            theirs.type,
            theirs.multiple,
            theirs.mandatory,
        ), f"/{object_id}/x/{rid}"
        if theirs.operations is not NO or object_id == 0:
            # The 1.1 Server DDF leaves 13..20 blank; we use the operations of the 1.2 DDF.
            assert mine.operations is theirs.operations, f"/{object_id}/x/{rid}"


@needs_oma
def test_resource_14_matches_firmware_update_1_2():
    official = load_object_xml(OMA / "5-1_2.xml")[14]
    ours = DEFAULT_MODEL[5][14]
    assert (ours.type, ours.operations, ours.multiple, ours.mandatory) == (
        official.type,
        official.operations,
        official.multiple,
        official.mandatory,
    )


def test_load_object_xml_reads_a_ddf_from_text():
    xml = """<LWM2M><Object ObjectType="MODefinition">
      <Name>Temperature</Name><ObjectID>3303</ObjectID><ObjectVersion>1.1</ObjectVersion>
      <MultipleInstances>Multiple</MultipleInstances><Mandatory>Optional</Mandatory>
      <Resources>
        <Item ID="5700"><Name>Sensor Value</Name><Operations>R</Operations>
          <MultipleInstances>Single</MultipleInstances><Mandatory>Mandatory</Mandatory>
          <Type>Float</Type><RangeEnumeration></RangeEnumeration><Units>Cel</Units></Item>
        <Item ID="5605"><Name>Reset Min and Max Measured Values</Name><Operations>E</Operations>
          <MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory>
          <Type></Type></Item>
      </Resources></Object></LWM2M>"""
    obj = load_object_xml(xml)
    assert (obj.id, obj.name, obj.version, obj.multiple) == (3303, "Temperature", "1.1", True)
    assert obj[5700] == ResourceDef(5700, "Sensor Value", R, T.FLOAT, False, True, "", "Cel")
    assert obj[5605].type is T.NONE and obj[5605].operations is E


def test_load_object_xml_explains_what_is_wrong():
    with pytest.raises(ModelError, match="not well-formed"):
        load_object_xml("<LWM2M><Object>")
    with pytest.raises(ModelError, match="no <Object>"):
        load_object_xml("<LWM2M/>")
    with pytest.raises(ModelError, match="unknown resource type 'Decimal'"):
        load_object_xml(
            "<LWM2M><Object><Name>x</Name><ObjectID>9</ObjectID><MultipleInstances>Single"
            "</MultipleInstances><Mandatory>Optional</Mandatory><Resources><Item ID='1'>"
            "<Name>a</Name><Operations>R</Operations><MultipleInstances>Single"
            "</MultipleInstances><Mandatory>Optional</Mandatory><Type>Decimal</Type></Item>"
            "</Resources></Object></LWM2M>"
        )
