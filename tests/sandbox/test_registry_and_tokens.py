"""The sandbox's Schema Registry subset, read with confluent-kafka's own client, and its per-datamart tokens."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tests.sandbox.conftest import choice_path
from tests.support.sandbox_process import SandboxProcess

SCHEMA = '{"type": "object"}'


@pytest.fixture
def client(sandbox: SandboxProcess) -> Iterator[SchemaRegistryClient]:
    """confluent-kafka's own client, pointed at the sandbox (closed after the test: it keeps a connection)."""
    with SchemaRegistryClient({"url": sandbox.registry_url, "max.retries": 0}) as registry:
        yield registry


class TestRegistrySubset:
    def test_the_client_reads_a_schema_by_id_and_by_guid(
        self, sandbox: SandboxProcess, client: SchemaRegistryClient
    ) -> None:
        guid = sandbox.register_schema(11, SCHEMA)
        by_id = client.get_schema(11)
        by_guid = client.get_schema_by_guid(guid)
        assert (by_id.schema_type, by_id.schema_str) == ("JSON", SCHEMA)
        assert (by_guid.schema_type, by_guid.schema_str) == ("JSON", SCHEMA)

    def test_an_avro_schema_reads_as_avro(self, sandbox: SandboxProcess, client: SchemaRegistryClient) -> None:
        sandbox.register_schema(12, '{"type": "record", "name": "r", "fields": []}', schema_type="AVRO")
        assert client.get_schema(12).schema_type == "AVRO"

    def test_an_unknown_id_is_the_registrys_40403(self, sandbox: SandboxProcess, client: SchemaRegistryClient) -> None:
        with pytest.raises(SchemaRegistryError) as caught:
            client.get_schema(404404)
        assert (caught.value.http_status_code, caught.value.error_code) == (404, 40403)

    def test_an_unavailable_registry_answers_503_until_it_is_back(
        self, sandbox: SandboxProcess, client: SchemaRegistryClient
    ) -> None:
        sandbox.register_schema(13, SCHEMA)
        sandbox.set_registry_available(False)
        with pytest.raises(SchemaRegistryError) as caught:
            client.get_schema(13)
        assert caught.value.http_status_code == 503
        assert sandbox.set_registry_available(True) >= 1
        assert client.get_schema(13).schema_str == SCHEMA

    def test_reset_forgets_the_schemas(self, sandbox: SandboxProcess, client: SchemaRegistryClient) -> None:
        sandbox.register_schema(14, SCHEMA)
        sandbox.reset()
        with pytest.raises(SchemaRegistryError):
            client.get_schema(14)

    @pytest.mark.parametrize(
        "document",
        [{"id": -1, "schema": "{}"}, {"id": 1, "schema": ""}, {"id": 1, "schema": "{}", "schemaType": "XML"}],
    )
    def test_bad_registrations_are_400(self, sandbox: SandboxProcess, document: dict[str, object]) -> None:
        response = httpx.put(sandbox.base_url + "/_sandbox/schemas", json=document, trust_env=False)
        assert response.status_code == 400


class TestTokenPerDatamart:
    def test_a_datamart_with_its_own_token_refuses_the_shared_one(self, sandbox: SandboxProcess) -> None:
        sandbox.set_datamart_token("2", "token-of-two")
        with httpx.Client(base_url=sandbox.base_url, trust_env=False) as api:
            assert api.get(choice_path(datamart="2"), headers={"Authorization": sandbox.token}).status_code == 401
            assert api.get(choice_path(datamart="2"), headers={"Authorization": "token-of-two"}).status_code == 404
            assert api.get(choice_path(datamart="1"), headers={"Authorization": sandbox.token}).status_code == 404
            assert api.get(choice_path(datamart="1"), headers={"Authorization": "token-of-two"}).status_code == 401

    def test_tokens_per_datamart_can_be_set_at_start(self) -> None:
        with SandboxProcess(datamart_tokens={"3": "token-of-three"}) as sandbox:
            with httpx.Client(base_url=sandbox.base_url, trust_env=False) as api:
                ok = api.get(choice_path(datamart="3"), headers={"Authorization": "token-of-three"})
                refused = api.get(choice_path(datamart="3"), headers={"Authorization": sandbox.token})
            sandbox.set_datamart_token("3", "rotated-three")
            sandbox.reset()  # back to the tokens it started with
            with httpx.Client(base_url=sandbox.base_url, trust_env=False) as api:
                restored = api.get(choice_path(datamart="3"), headers={"Authorization": "token-of-three"})
        assert (ok.status_code, refused.status_code, restored.status_code) == (404, 401, 404)
