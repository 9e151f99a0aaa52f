"""A provider's accounts from the provider keys' secret (aigc.providers.accounts), and make dev's
--provider-keys."""
from __future__ import annotations

import pytest

from aigc.providers.accounts import Account, key_id, parse, pick
from local.devserver import StartupError, _provider_keys


def test_keys_are_a_list_per_provider_with_ids_that_never_show_the_key():
    secret = {"dashscope_api_keys": ["sk-one", {"id": "team-b", "key": "sk-two", "concurrency": 3}],
              "dashscope_api_key": "sk-old", "openai_api_key": "sk-openai"}
    accounts = parse(secret, "dashscope")
    assert [(a.id, a.concurrency) for a in accounts] == [(key_id("sk-one"), None), ("team-b", 3), (key_id("sk-old"), None)]
    assert all("sk-" not in a.id and "sk-" not in repr(a) for a in accounts)
    assert key_id("sk-one") == key_id("sk-one") != key_id("sk-two")  # stable: reordering the list changes no id
    assert [a.id for a in parse(secret, "openai")] == [key_id("sk-openai")]


def test_repeated_and_malformed_entries_are_left_out():
    secret = {"dashscope_api_keys": ["sk-one", "sk-one", "", {"key": ""}, {"id": "bad id!", "key": "sk-two"}, 7,
                                     {"key": "sk-three", "concurrency": 0}]}
    accounts = parse(secret, "dashscope")
    assert [a.key for a in accounts] == ["sk-one", "sk-two", "sk-three"]
    assert accounts[1].id == key_id("sk-two")  # an invalid id falls back to the key's
    assert accounts[2].concurrency is None  # an invalid concurrency: the pool's


def test_a_task_speaks_with_its_account_else_the_first():
    accounts = [Account("a", "sk-a"), Account("b", "sk-b")]
    assert pick(accounts, "b").key == "sk-b"
    assert pick(accounts, None).key == "sk-a" and pick(accounts, "gone").key == "sk-a"


def test_make_dev_provider_keys():
    assert _provider_keys({"dashscope": "3"}) == {"dashscope_keys": 3}
    for bad in ({"openai": "2"}, {"dashscope": "0"}, {"dashscope": "x"}, {"dashscope": "51"}):
        with pytest.raises(StartupError):
            _provider_keys(bad)
