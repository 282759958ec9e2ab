"""The local Hub answers huggingface_hub's metadata calls the way the real Hub does."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub.errors import HfHubHTTPError

from app.core.models.hub_access import HubSettings, describe_hub_error, make_hf_api
from tests.hub_server import HostedFile, HubServer

REPO = "unsloth/Qwen3.5-2B-GGUF"
MODEL_FILE = "Qwen3.5-2B-Q4_K_M.gguf"


@pytest.fixture
def hosted(hub_server: HubServer, tiny_model: Path) -> HostedFile:
    hub_server.add_file(REPO, "extras/mmproj-F16.gguf", b"GGUF projector")
    hub_server.add_file(REPO, "README.md", b"# Qwen3.5 2B\n", lfs=False)
    return hub_server.add_file(REPO, MODEL_FILE, tiny_model)


def test_model_info_lists_files_with_sizes_and_hashes(hosted: HostedFile, hub_settings: HubSettings) -> None:
    info = make_hf_api(hub_settings, None).model_info(REPO, files_metadata=True)
    assert info.sha == hosted.commit
    siblings = {sibling.rfilename: sibling for sibling in info.siblings}
    assert set(siblings) == {MODEL_FILE, "extras/mmproj-F16.gguf", "README.md"}
    assert (siblings[MODEL_FILE].lfs.sha256, siblings[MODEL_FILE].lfs.size) == (hosted.sha256, hosted.size)
    assert siblings["README.md"].lfs is None and siblings["README.md"].size == len(b"# Qwen3.5 2B\n")
    # Without files_metadata the Hub lists only the names.
    assert make_hf_api(hub_settings, None).model_info(REPO, revision=hosted.commit).siblings[0].size is None


def test_paths_info_tree_and_search_describe_the_repository(hosted: HostedFile, hub_settings: HubSettings) -> None:
    api = make_hf_api(hub_settings, None)
    [model] = api.get_paths_info(REPO, [MODEL_FILE, "no-such-file"], revision=hosted.commit, expand=True)
    assert (model.size, model.lfs.size, model.lfs.sha256) == (hosted.size, hosted.size, hosted.sha256)
    assert model.last_commit.oid == hosted.commit
    top_level = {entry.path for entry in api.list_repo_tree(REPO)}
    assert top_level == {MODEL_FILE, "README.md", "extras"}
    assert "extras/mmproj-F16.gguf" in {entry.path for entry in api.list_repo_tree(REPO, recursive=True)}
    assert [found.id for found in api.list_models(search="qwen3.5-2b")] == [REPO]


def test_a_protected_repository_wants_the_token(
    hub_server: HubServer, hosted: HostedFile, hub_settings: HubSettings
) -> None:
    hub_server.require_token(REPO, "hf_right")
    with pytest.raises(HfHubHTTPError) as refused:
        make_hf_api(hub_settings, "hf_wrong").model_info(REPO)
    assert "token" in describe_hub_error(refused.value)
    assert make_hf_api(hub_settings, "hf_right").model_info(REPO).id == REPO
    assert hub_server.requests[-1].headers["authorization"] == "Bearer hf_right"
