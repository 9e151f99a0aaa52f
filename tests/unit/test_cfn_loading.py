"""local/cfn.load_template reads short tags in their long forms, as CloudFormation does."""
from local.cfn import load_template


def test_short_tags_become_long_forms_and_dates_stay_strings(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(
        "AWSTemplateFormatVersion: 2010-09-09\n"
        "Resources:\n"
        "  Fn:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties:\n"
        "      Role: !GetAtt Role.Arn\n"
        "      Name: !Sub '${AWS::StackName}-fn'\n"
        "      Table: !Ref Table\n"
        "      Size: !If [Big, 1024, !Ref AWS::NoValue]\n"
        "      Items: !Join [',', [!Select [0, !Split ['-', a-b]], b]]\n"
    )
    template = load_template(path)
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    properties = template["Resources"]["Fn"]["Properties"]
    assert properties == {
        "Role": {"Fn::GetAtt": ["Role", "Arn"]},
        "Name": {"Fn::Sub": "${AWS::StackName}-fn"},
        "Table": {"Ref": "Table"},
        "Size": {"Fn::If": ["Big", 1024, {"Ref": "AWS::NoValue"}]},
        "Items": {"Fn::Join": [",", [{"Fn::Select": [0, {"Fn::Split": ["-", "a-b"]}]}, "b"]]},
    }
    assert type(properties["Name"]["Fn::Sub"]) is str and type(template["Resources"]) is dict
