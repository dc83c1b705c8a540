"""recipes/: every paper setup parses as a `rairl airl` config, builds on the meta device from its stored
architecture, has LoRA targets that exist, and is estimated to fit the GPU it is launched on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from rairl.cli import main
from rairl.recipes import Launch, check_all, estimate_memory, lora_parameters, meta_model

ROOT = Path(__file__).resolve().parents[1] / "recipes"
INDEX = ROOT / "index.yaml"
# Published parameter counts (model cards), to check the stored architectures against.
PUBLISHED_B = {
    "Llama-3.2-3B-Instruct": 3.21,
    "Llama-3.2-1B-Instruct": 1.24,
    "Qwen2.5-3B-Instruct": 3.09,
    "Qwen2.5-0.5B-Instruct": 0.49,
}


@pytest.fixture(scope="module")
def checks():
    return check_all(INDEX)


def test_every_paper_setup_has_a_recipe_for_each_launch(checks):
    pairs = {(r["recipe"], r["launch"]) for r in checks}
    tasks = {r["recipe"].rsplit("_", 1)[0] for r in checks}
    assert tasks == {"gsm8k", "mmlu_pro", "medreason"}
    assert {r["policy"] for r in checks} == {"meta-llama/Llama-3.2-3B-Instruct", "Qwen/Qwen2.5-3B-Instruct"}
    assert len(pairs) == 6 * 2
    assert {(r["launch"], r["processes"]) for r in checks} == {("1gpu_lora", 1), ("8gpu_fsdp_full", 8)}


def test_every_recipe_fits_its_gpu(checks):
    assert [r["recipe"] for r in checks if not r["fits"]] == []
    for r in checks:
        assert 0 < r["memory_gib"]["total"] <= 80


@pytest.mark.parametrize("name, billions", PUBLISHED_B.items())
def test_stored_architectures_have_the_published_size(name, billions):
    model = meta_model(ROOT / "models" / f"{name}.json")
    assert next(model.parameters()).device.type == "meta"
    assert sum(p.numel() for p in model.parameters()) / 1e9 == pytest.approx(billions, rel=0.01)


def test_lora_parameters_by_hand():
    model = meta_model(ROOT / "models" / "Qwen2.5-0.5B-Instruct.json")  # 24 layers, h = 896, 2 KV heads of 64
    assert lora_parameters(model, 8, ["q_proj"]) == 24 * 8 * (896 + 896)
    assert lora_parameters(model, 8, ["k_proj", "v_proj"]) == 24 * 2 * 8 * (896 + 128)
    with pytest.raises(ValueError, match=r"\['qkv'\] match no linear layer of qwen2; its linear layers are"):
        lora_parameters(model, 8, ["qkv"])


def test_fsdp_divides_weights_and_training_state(checks):
    by = {(r["recipe"], r["launch"]): r["memory_gib"] for r in checks}
    lora, full = by[("gsm8k_llama.yaml", "1gpu_lora")], by[("gsm8k_llama.yaml", "8gpu_fsdp_full")]
    assert full["weights"] == pytest.approx(lora["weights"] / 8, abs=0.1)
    assert full["training_state"] > lora["training_state"]  # all weights train, even sharded 8 ways


def test_memory_estimate_by_hand():
    class C:  # the fields the estimate reads
        lora_r, disc_lora_r, beta, use_vllm, activation_checkpointing = 0, 0, 0.0, False, False
        lora_target_modules = disc_lora_target_modules = ["all-linear"]
        disc_likelihood, disc_likelihood_from = True, "backbone"
        per_device_train_batch_size, max_completion_length, disc_batch_size = 1, 1, 1
        vllm_gpu_memory_utilization = 0.3

    model = meta_model(ROOT / "models" / "Qwen2.5-0.5B-Instruct.json")
    p = sum(x.numel() for x in model.parameters())
    m = estimate_memory(C(), model, model, 1, Launch("x", Path("."), "GPU", 80, []))
    assert m["weights"] == pytest.approx(4 * p / 2**30, abs=0.06)
    assert m["training_state"] == pytest.approx(28 * p / 2**30, abs=0.06)


def test_a_recipe_too_big_for_its_gpu_is_an_error(tmp_path):
    shutil.copytree(ROOT, tmp_path / "recipes")
    index = tmp_path / "recipes" / "index.yaml"
    values = yaml.safe_load(index.read_text())
    values["launches"]["1gpu_lora"]["gpu_gib"] = 24
    values["launches"]["1gpu_lora"]["gpu"] = "L4 24GB"
    index.write_text(yaml.safe_dump(values))
    assert main(["recipes", "--index", str(index)]) == 1


def test_a_recipe_with_a_missing_lora_target_is_an_error(tmp_path, capsys):
    shutil.copytree(ROOT, tmp_path / "recipes")
    recipe = tmp_path / "recipes" / "gsm8k_qwen.yaml"
    recipe.write_text(recipe.read_text().replace("lora_target_modules: [q_proj,", "lora_target_modules: [query,", 1))
    assert main(["recipes", "--index", str(tmp_path / "recipes" / "index.yaml")]) == 1
    assert "['query'] match no linear layer of qwen2" in capsys.readouterr().err
