"""``/api/v1/executions``: the lifecycle records writers keep in storage."""

from __future__ import annotations

import bottle

from factflow_storage.api_paths import EXECUTIONS
from factflow_storage.errors import BadRequest
from factflow_storage.keys import validate_segment
from factflow_storage.server.http import check_raw_path, json_response, query, query_int, read_json_body
from factflow_storage.server.retention_routes import refuse_sub_resource
from factflow_storage.server.storage_routes import cursor_param
from factflow_storage.service import StorageService

def install(app: bottle.Bottle, service: StorageService) -> None:
    @app.get(EXECUTIONS)
    def list_executions():
        limit = query("limit")
        return json_response(service.executions(
            limit=None if limit is None else query_int("limit", 0), cursor=cursor_param(),
            status=query("status") or None, since=query("since"), until=query("until")))

    # ``:path`` so an id that decodes to several segments ('..%2f..') is refused as a bad
    # id (400) by the service, like any other invalid id, rather than missing a route.
    @app.get(EXECUTIONS + "/<execution_id:path>")
    def get_execution(execution_id: str):
        check_raw_path()
        refuse_sub_resource(execution_id)
        return json_response(service.execution(execution_id))

    @app.put(EXECUTIONS + "/<execution_id:path>")
    def put_execution(execution_id: str):
        check_raw_path()
        refuse_sub_resource(execution_id)
        validate_segment(execution_id, "execution id")
        body = read_json_body()
        if not isinstance(body, dict) or not isinstance(body.get("status"), str):
            raise BadRequest('the body must be a JSON object with a "status" string')
        if not isinstance(body.get("strict", False), bool):
            raise BadRequest('"strict" must be true or false')
        return json_response(service.set_execution_status(execution_id, body["status"],
                                                          strict=body.get("strict", False)))
