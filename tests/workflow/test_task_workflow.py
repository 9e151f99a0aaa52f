"""The real ASL executed on moto's Step Functions interpreter, real handlers, simulator provider."""



def test_outpainting_succeeds_and_charges_once(app):
    app.grant("alice", 100)
    status, body = app.submit(modelName="image-out-painting", imageUrl=app.sample_url(64, 48),
                              parameters={"xScale": 2, "yScale": 2})
    assert status == 200, body
    task_no = body["data"]["taskNo"]
    assert body["data"]["status"] == "queued"
    assert app.balance("alice") == 90

    execution = app.wait_execution(task_no)
    assert execution["status"] == "SUCCEEDED"
    task = app.task(task_no)
    assert task["status"] == "completed", task
    assert task["progress"] == 100
    assert task["resultUrl"] and task["thumbnailUrl"]
    assert app.ledger("alice", task_no) == [("DEBIT", -10)]
    assert app.balance("alice") == 90
