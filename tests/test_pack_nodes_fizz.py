"""FizzNodes' schedules (nodes/pack_nodes_fizz.py): keyframe parsing and interpolation weights against
the linear formula worked by hand, value schedules against Python's math on t, the batch blend against
CLIPTextEncode's encodings mixed by the pack's addWeighted rule, sampling the per-frame conditioning
on the demo model (each latent row takes its frame's prompt) and under AnimateDiff's context windows
(each window takes its frames' rows), the clear errors, a UI save and an API prompt with the pack's
class names, and the export round trips."""

import math

import numpy as np
import pytest
import torch

from graphflow.comfy_format import custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.demo import measure
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.testing import unet_config, write_checkpoint, write_motion_module
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_fizz import interpolated_prompts, prompt_keyframes, schedule_expression, value_series
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

DEMO = "graphflow-demo.safetensors"


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


@pytest.fixture(scope="module")
def clip(registry):
    return call(registry, "LoadCheckpoint", checkpoint=DEMO)[1]


def encode(registry, clip, text):
    """CLIPTextEncode's (cond, pooled) of the text."""
    (cond, options), = call(registry, "CLIPEncode", text=text, clip=clip)
    return cond, options["pooled_output"]


def linked_call(registry, node_type, **inputs):
    """call(), the widget values checked as values arriving by links are (pw_a may be a list)."""
    cls = registry.get(node_type)
    cls.linked_widget_model.model_validate({k: v for k, v in inputs.items() if cls.input_specs[k].widget})
    node = cls.__new__(cls)
    node.__dict__.update({name: spec.default for name, spec in cls.input_specs.items()})
    node.__dict__.update(inputs)
    return node.run()


def centre_pad(cond, length):
    """Zero tokens added half before, half after (the extra one after): the pack's pad_with_zeros."""
    missing = length - cond.shape[1]
    before = torch.zeros(cond.shape[0], missing // 2, cond.shape[2])
    after = torch.zeros(cond.shape[0], missing - missing // 2, cond.shape[2])
    return torch.cat([before, cond, after], dim=1)


# -- parsing and interpolation ------------------------------------------------------------------


def test_keyframes_read_as_the_pack_reads_them():
    text = '"0": "a cat",\n"12" :"a dog", \n"max_f/2": "a bird",\n'  # trailing comma, spaces, a formula key
    assert prompt_keyframes(text) == {"0": "a cat", "12": "a dog", "max_f/2": "a bird"}
    assert prompt_keyframes('"0": "a long\nprompt"') == {"0": "a longprompt"}  # newlines are removed, as in the pack


def test_interpolation_weights_follow_the_linear_formula():
    series = interpolated_prompts({"0": "a", "10": "b", "max_f - 4": "c"}, 20)  # max_f = 20 here: key 16
    for f in range(20):
        if f < 10:
            expected = ("a", "b", 1 - (f - 0) / 10)
        elif f < 16:
            expected = ("b", "c", 1 - (f - 10) / 6)
        else:  # after the last keyframe: itself twice (an added keyframe at max_frames)
            expected = ("c", "c", 1 - (f - 16) / 4)
        assert (series.current[f], series.following[f]) == expected[:2]
        assert series.weights[f] == pytest.approx(expected[2], abs=1e-12), f


def test_a_schedule_not_starting_at_zero_holds_its_first_prompt():
    series = interpolated_prompts({"5": "a", "8": "b"}, 10)
    assert series.current[:5] == ["a"] * 5 and series.following[:5] == ["a"] * 5
    assert series.current[5:8] == ["a"] * 3 and series.following[5:8] == ["b"] * 3
    assert series.weights[6] == pytest.approx(1 - 1 / 3)


def test_formulas_in_prompts_and_pre_app_text(registry):
    text = '"0": "a (cat:`0.5 + t/10`) --neg blurry",\n"4": "a (dog:`pw_a * max_f`)"'
    pos, neg = linked_call(registry, "BatchStringSchedule", text=text, max_frames=6, pre_text="photo of",
                    app_text="4k --neg ugly", pw_a=[0.1 * f for f in range(6)])
    # pre + " " + prompt + " " + app, each side's part of the texts around --neg, then stripped
    for f in range(4):
        assert pos[f] == f"photo of a (cat:{0.5 + f / 10})  4k"
        assert neg[f] == "blurry  ugly"
    for f in (4, 5):
        assert pos[f] == f"photo of a (dog:{0.1 * f * 5}) 4k"
        assert neg[f] == "ugly"
    one = call(registry, "StringSchedule", text=text, max_frames=6, current_frame=8, pw_a=2.0)  # 8 % 6 = 2
    assert one == ("a (cat:0.7)", "blurry")


def test_a_prompt_ending_in_0_loses_it_as_in_the_pack(registry):
    pos, _ = call(registry, "BatchStringSchedule", text='"0": "a cat"', max_frames=2, app_text="1080")
    assert pos == ["a cat 108", "a cat 108"]


def test_expressions_use_the_allow_list_only():
    assert schedule_expression("where(t > 3, sin(t), 2**3 % 5)", {"t": 5}) == math.sin(5)
    assert schedule_expression("arctan2(1, 2) + floor(2.5) + abs(-1)", {}) == math.atan2(1, 2) + 3
    for bad in ("__import__('os')", "t.real", "open('x')", "[1, 2]", "lambda: 1", "2 ** 100000", "1 << 99"):
        with pytest.raises((ValueError, NameError, SyntaxError, OverflowError)):
            schedule_expression(bad, {"t": 1})


# -- value schedules ------------------------------------------------------------------------------


def test_value_schedule_against_python_math(registry):
    values, ints = call(registry, "BatchValueSchedule", text="0:(0.5 + 0.5*sin(t/4)),", max_frames=30)
    assert values == pytest.approx([0.5 + 0.5 * math.sin(t / 4) for t in range(30)], abs=1e-12)
    assert ints == [int(v) for v in values]
    # numbers interpolate linearly; a formula keyframe runs until the next keyframe; the last frame
    # takes the last keyframe's value
    values, ints = call(registry, "BatchValueSchedule", text="0:(2), 10:(-3), 14:(t*t/max_f), 18:(1)",
                        max_frames=24)
    expected = [2 + (-3 - 2) * f / 10 for f in range(11)] + [-3 + (14 * 14 / 23 + 3) * (f - 10) / 4
                                                             for f in range(11, 14)]
    expected += [t * t / 23 for t in range(14, 18)] + [1.0] * 6
    assert values == pytest.approx(expected, abs=1e-12)
    assert ints == [int(v) for v in expected]  # cut toward 0, as int()
    value, whole = call(registry, "ValueSchedule", text="0:(2), 10:(-3), 14:(t*t/max_f), 18:(1)", max_frames=24,
                        current_frame=24 + 7)  # modulo max_frames
    assert (value, whole) == (pytest.approx(expected[7]), int(expected[7]))


def test_value_schedule_keys_and_quotes():
    assert value_series("'0':(1), \"max_f\":(3)", 5) == pytest.approx([1, 1.5, 2, 2.5, 3])
    assert value_series("3:(1)", 5) == [1.0] * 5  # frames before the first keyframe hold its value


def test_latent_input_variants_take_the_frames_of_the_latent(registry, clip):
    latent = {"samples": torch.zeros(5, 4, 8, 8)}
    values, ints, passed = call(registry, "BatchValueScheduleLatentInput", text="0:(0), 4:(1)", num_latents=latent)
    assert values == pytest.approx([0, 0.25, 0.5, 0.75, 1]) and passed is latent
    pos, neg, passed = call(registry, "BatchPromptScheduleLatentInput", text='"0": "a red circle"', clip=clip,
                            num_latents=latent)
    assert pos[0][0].shape[0] == 5 and neg[0][0].shape[0] == 5 and passed is latent


# -- conditioning --------------------------------------------------------------------------------


def test_batch_rows_blend_two_keyframes_by_the_packs_rule(registry, clip):
    long_prompt = "a red circle on a white background, " * 12  # more than 75 tokens: two windows
    text = f'"0": "{long_prompt}",\n"4": "a blue square"'
    (pos, options), = call(registry, "BatchPromptSchedule", text=text, clip=clip, max_frames=6)[0]
    cond_a, pooled_a = encode(registry, clip, long_prompt.strip())
    cond_b, pooled_b = encode(registry, clip, "a blue square")
    assert cond_a.shape[1] == 154 and cond_b.shape[1] == 77 and pos.shape == (6, 154, cond_a.shape[2])
    padded_b = centre_pad(cond_b, 154)
    for f in range(6):
        w = 1 - f / 4 if f < 4 else 1 - (f - 4) / 2
        expected = cond_a[0] * w + padded_b[0] * (1 - w) if f < 4 else padded_b[0]
        torch.testing.assert_close(pos[f], expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(options["pooled_output"][f], pooled_b[0])  # the next prompt's pooled output
    assert not torch.equal(pos[0], pos[1])


def test_single_frame_schedule_matches_the_batch_row_or_the_keyframe(registry, clip):
    text = '"0": "a red circle --neg blurry",\n"4": "a blue square"'
    cond_a, pooled_a = encode(registry, clip, "a red circle")
    cond_b, pooled_b = encode(registry, clip, "a blue square")
    (p0, o0), = call(registry, "PromptSchedule", text=text, clip=clip, max_frames=8, current_frame=0)[0]
    torch.testing.assert_close(p0, cond_a)  # on a keyframe: its own encoding and pooled output
    torch.testing.assert_close(o0["pooled_output"], pooled_a)
    pos, neg = call(registry, "PromptSchedule", text=text, clip=clip, max_frames=8, current_frame=3)
    torch.testing.assert_close(pos[0][0], cond_a * 0.25 + cond_b * 0.75, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pos[0][1]["pooled_output"], pooled_b)
    cond_blurry, _ = encode(registry, clip, "blurry")
    cond_empty, _ = encode(registry, clip, "")
    torch.testing.assert_close(neg[0][0], cond_blurry * 0.25 + cond_empty * 0.75, atol=1e-5, rtol=1e-5)


def test_batch_schedule_samples_one_prompt_per_latent_frame(registry, tmp_folders):
    """Each latent row takes its row of the batch conditioning: row f of a sampled batch is what
    sampling the same batch with frame f's plain prompt gives, and the pictures show the prompts."""
    red, blue = "a red circle on a white background", "a blue square on a white background"

    def graph(positive):
        return {
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": DEMO}},
            "2": positive,
            "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
            "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 2}},
            "5": {"class_type": "KSampler", "inputs": {"seed": 3, "steps": 10, "cfg": 5.0, "sampler_name": "euler",
                                                       "scheduler": "normal", "denoise": 1.0, "model": ["1", 0],
                                                       "positive": ["2", 0], "negative": ["3", 0],
                                                       "latent_image": ["4", 0]}},
            "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        }

    schedule = {"class_type": "BatchPromptSchedule", "inputs": {"text": f'"0": "{red}",\n"1": "{blue}"',
                                                                "clip": ["1", 1], "max_frames": 2,
                                                                "print_output": False}}
    scheduled = run_graph(registry, graph(schedule), ["6"]).values["6"][0]
    for f, prompt in enumerate((red, blue)):
        plain = run_graph(registry, graph({"class_type": "CLIPTextEncode",
                                           "inputs": {"text": prompt, "clip": ["1", 1]}}), ["6"]).values["6"][0]
        torch.testing.assert_close(scheduled[f], plain[f], atol=2e-3, rtol=0)
    looks = [measure.measure(image) for image in scheduled]
    assert (looks[0].colour, looks[0].shape) == ("red", "circle")
    assert (looks[1].colour, looks[1].shape) == ("blue", "square")


def test_animatediff_context_windows_cut_the_schedule_per_window(registry, tmp_folders, monkeypatch):
    """Under AnimateDiff's context options each window's conditioning holds its frames' rows of the
    batch schedule (graphflow.sampling.context_windows cuts rows of the latent's batch)."""
    from graphflow.sampling import context_windows

    for sub in ("checkpoints", "animatediff_models"):
        (tmp_folders.models / sub).mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    write_motion_module(tmp_folders.models / "animatediff_models" / "mm.safetensors", unet_config("sd1"), "v2")
    seen = []
    original = context_windows.cut_cond

    def recording(cond, dim, window, x_shape):
        cut = original(cond, dim, window, x_shape)
        seen.append((cond.context, list(window), cut.context))
        return cut

    monkeypatch.setattr(context_windows, "cut_cond", recording)
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "2": {"class_type": "ADE_AnimateDiffLoaderWithContext", "inputs": {
            "model": ["1", 0], "model_name": "mm.safetensors", "beta_schedule": "sqrt_linear (AnimateDiff)",
            "context_options": ["3", 0]}},
        "3": {"class_type": "ADE_StandardStaticContextOptions", "inputs": {"context_length": 4, "context_overlap": 1}},
        "4": {"class_type": "BatchPromptSchedule", "inputs": {"text": '"0": "a cat",\n"5": "a dog"', "clip": ["1", 1],
                                                              "max_frames": 6, "print_output": False}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 6}},
        "6": {"class_type": "KSampler", "inputs": {"model": ["2", 0], "positive": ["4", 0], "negative": ["4", 1],
                                                   "latent_image": ["5", 0], "seed": 1, "steps": 2, "cfg": 4.0,
                                                   "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
    }
    result = run_graph(registry, prompt, ["4", "6"])
    rows = result.values["4"][0][0][0]
    assert result.values["6"][0]["samples"].shape[0] == 6 and seen
    windows = set()
    for full, window, cut in seen:
        if full.shape[0] == 6 and torch.equal(full.cpu().float(), rows.float()):
            torch.testing.assert_close(cut, full[window])
            windows.add(tuple(window))
    assert windows == {(0, 1, 2, 3), (2, 3, 4, 5)}  # the positive side of both windows, rows of their frames


def test_sdxl_schedules_as_the_pack_fills_them(registry, tmp_folders):
    """text_l's keyframes take over from its first on; each frame's text goes to both towers
    (CLIPTextEncodeSDXL with the sizes); after the last keyframe its prompt holds; rows blend by the
    earlier prompt's weight with the next prompt's pooled output."""
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny_xl.safetensors", "sdxl")
    clip = call(registry, "LoadCheckpoint", checkpoint="tiny_xl.safetensors")[1]
    sizes = {"width": 512, "height": 768, "crop_w": 8, "crop_h": 0, "target_width": 512, "target_height": 768}

    def xl(text):
        (cond, options), = call(registry, "CLIPEncodeSDXL", clip=clip, text_g=text, text_l=text, **sizes)
        return cond[0], options["pooled_output"][0]

    texts = {"text_g": '"0": "a cat", "2": "a dog"', "text_l": '"3": "a bird",\n"5": "a fish"'}
    pos, neg = call(registry, "BatchPromptScheduleEncodeSDXL", clip=clip, max_frames=6, **texts, **sizes)
    expected = [("a cat", "a dog", 1.0), ("a cat", "a dog", 0.5), ("a cat", "a dog", 0.0),
                ("a bird", "a fish", 1.0), ("a bird", "a fish", 0.5), ("a bird", "a fish", 0.0)]
    (rows, options), = pos
    assert set(options) == {"pooled_output"} and rows.shape[0] == 6
    for f, (current, following, w) in enumerate(expected):
        torch.testing.assert_close(rows[f], xl(current)[0] * w + xl(following)[0] * (1 - w), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(options["pooled_output"][f], xl(following)[1])
    torch.testing.assert_close(neg[0][0][3], xl("")[0])
    (one, one_options), = call(registry, "PromptScheduleEncodeSDXL", clip=clip, max_frames=6, current_frame=10,
                               **texts, **sizes)[0]  # 10 % 6 = frame 4
    torch.testing.assert_close(one[0], xl("a bird")[0] * 0.5 + xl("a fish")[0] * 0.5, atol=1e-5, rtol=1e-5)
    assert {k: one_options[k] for k in sizes} == sizes
    torch.testing.assert_close(one_options["pooled_output"][0], xl("a fish")[1])
    latent = {"samples": torch.zeros(4, 4, 8, 8)}
    pos, _, passed = call(registry, "BatchPromptScheduleSDXLLatentInput", clip=clip, num_latents=latent, **texts)
    assert pos[0][0].shape[0] == 4 and passed is latent
    with pytest.raises(NodeInputError, match="one keyframe") as e:
        call(registry, "BatchPromptScheduleEncodeSDXL", clip=clip, max_frames=6, text_g=texts["text_g"],
             text_l='"0": "a bird"')
    assert e.value.input == "text_l"
    with pytest.raises(NodeInputError, match="frame 0 comes before"):
        call(registry, "BatchPromptScheduleEncodeSDXL", clip=clip, max_frames=6, text_g='"2": "a", "4": "b"')


def test_image_select_schedule_picks_as_the_pack(registry):
    from nodes.pack_nodes_fizz import selected_images

    every = list(range(6))
    assert selected_images("1, 3:5, 5:, :3, x, 7, 0", 6) == [0] + every[2:4] + every[4:] + every[:2] + [-1]
    images = torch.rand(6, 4, 4, 3)
    text = '"0": "1,2",\n"3": "`t`:`t+2`"'
    out = call(registry, "ImagesFromBatchSchedule", images=images, text=text, current_frame=4, max_frames=8)
    torch.testing.assert_close(out, images[[3, 4]])  # frame 4: "4:6", images 4 and 5 (1-based)
    torch.testing.assert_close(call(registry, "ImagesFromBatchSchedule", images=images, text=text,
                                    current_frame=1, max_frames=8), images[[0, 1]])
    assert call(registry, "ImagesFromBatchSchedule", images=images, text='"0": "none"', max_frames=8) is images
    with pytest.raises(NodeInputError, match="not below max_frames"):
        call(registry, "ImagesFromBatchSchedule", images=images, text=text, current_frame=8, max_frames=8)


# -- waves and helpers ----------------------------------------------------------------------------


def test_waves_against_the_packs_numpy_formulas(registry):
    p, a, x, y = 7.0, 1.5, 0.5, 2.0
    pi = np.pi
    with np.errstate(divide="ignore"):
        for f in (0, 1, 3, 5, 10):
            formulas = {
                "SinWave": y + a * np.sin(2 * pi * f / p - x),
                "InvSinWave": y + a * -np.sin(-1 * (2 * pi * f / p - x)),
                "CosWave": y + a * np.cos(2 * pi * f / p - x),
                "InvCosWave": y + a * -np.cos(-1 * (2 * pi * f / p - x)),
                "SquareWave": y + a * 0 ** 0 ** (0 - np.sin(pi * f / p - x)),
                "TriangleWave": y + a / pi * np.arcsin(np.sin(2 * pi / p * f - x)),
            }
            for name, expected in formulas.items():
                value, whole = call(registry, name, phase=p, amplitude=a, x_translation=x, y_translation=y,
                                    current_frame=f)
                assert value == pytest.approx(float(expected), abs=1e-12) and whole == int(expected), (name, f)
            for name, fn in (("AbsSinWave", np.sin), ("AbsCosWave", np.cos)):
                value, _ = call(registry, name, phase=p, amplitude=a, x_translation=x, max_value=y, current_frame=f)
                assert value == pytest.approx(y - np.abs(fn(f / p)) * a)
            value, _ = call(registry, "SawtoothWave", phase=p, step_increment=a, x_translation=x, start_value=y,
                            current_frame=f)
            assert value == pytest.approx(y + (a * (f % p) - x))
            assert call(registry, "Lerp", num_Images=8.0, strength=2.0, current_frame=f)[0] == \
                pytest.approx(2.0 - 2.0 / 8.0 * f)
    with pytest.raises(NodeInputError, match="must not be 0") as e:
        call(registry, "SinWave", phase=0.0, current_frame=1)
    assert e.value.input == "phase"


def test_helpers_and_node_flow(registry):
    assert call(registry, "ConcatStringSingle", string_a="a", string_b="b") == "ab"
    assert call(registry, "ConvertKeyframeKeysToBatchKeys", input=3, num_latents=16) == 47
    assert call(registry, "CalculateFrameOffset", current_frame=0, max_frames=18, num_latent_inputs=4, index=2) == 2
    assert call(registry, "CalculateFrameOffset", current_frame=5, max_frames=18, num_latent_inputs=4, index=2) == \
        ((5 - 1) * 3 + 3 + 2) % 18
    first = call(registry, "PromptScheduleNodeFlow", text="a cat", num_frames=12)
    second = call(registry, "PromptScheduleNodeFlow", text="a dog", num_frames=12, in_text=first[1] + ",",
                  max_frames=first[0])
    assert first == (12, '"0": "a cat"') and second == (24, '"0": "a cat", "24": "a dog"')


def test_node_frames_build_a_schedule_text(registry, clip):
    chain, pos, neg = call(registry, "InitFizzFrame", frame=0, positive_text="a cat", negative_text="blurry",
                           general_positive="masterpiece", general_negative="lowres", clip=clip)
    torch.testing.assert_close(pos[0][0], encode(registry, clip, "a cat, masterpiece")[0])
    torch.testing.assert_close(neg[0][0], encode(registry, clip, "blurry, lowres")[0])
    chain, pos, _ = call(registry, "FizzFrame", frame=12, previous_frame=chain, positive_text="a dog")
    torch.testing.assert_close(pos[0][0], encode(registry, clip, "a dog, masterpiece")[0])
    text = call(registry, "FizzFrameConcatenate", frame=chain)
    assert text == ('"0": "a cat, masterpiece, --neg , blurry, lowres",\n'
                    '"12": "a dog, masterpiece, --neg , lowres"')
    assert prompt_keyframes(text)["12"] == "a dog, masterpiece, --neg , lowres"


# -- errors ---------------------------------------------------------------------------------------


def test_clear_errors_name_the_input_and_line(registry, clip):
    with pytest.raises(NodeInputError, match=r"line 3 .*\"8\": \"c\".*delimiter") as e:
        call(registry, "BatchStringSchedule", text='"0": "a",\n"4": "b"\n"8": "c"', max_frames=6)
    assert e.value.input == "text"
    with pytest.raises(NodeInputError, match=r"line 2 .*unknown function 'foo'"):
        call(registry, "BatchValueSchedule", text="0:(0),\n5:(foo(t))", max_frames=12)
    with pytest.raises(NodeInputError, match=r"line 2 .*expected frame:\(value\)"):
        call(registry, "BatchValueSchedule", text="0:(0),\n5", max_frames=12)
    with pytest.raises(NodeInputError, match="frame 0.*not part of numexpr's grammar"):
        call(registry, "BatchStringSchedule", text='"0": "`os.system(1)`"', max_frames=2)
    with pytest.raises(NodeInputError, match="2 values for 6 frames") as e:
        linked_call(registry, "BatchPromptSchedule", text='"0": "`pw_a`"', clip=clip, max_frames=6, pw_a=[1.0, 2.0])
    assert e.value.input == "pw_a"
    with pytest.raises(NodeInputError, match="keyframe '1.5'"):
        call(registry, "BatchStringSchedule", text='"1.5": "a"', max_frames=2)
    with pytest.raises(NodeInputError, match="not text in quotes"):
        call(registry, "BatchStringSchedule", text='"0": 5', max_frames=2)
    with pytest.raises(NodeInputError, match="no text encoder") as e:
        call(registry, "BatchPromptSchedule", text='"0": "a"', clip=None, max_frames=2)
    assert e.value.input == "clip"


def test_a_linked_list_is_checked_against_pw_bounds(registry):
    prompt = {"1": {"class_type": "BatchValueSchedule", "inputs": {"text": "0:(0), 3:(20000)", "max_frames": 4,
                                                                   "print_output": False}},
              "2": {"class_type": "BatchStringSchedule", "inputs": {"text": '"0": "`pw_a`"', "max_frames": 4,
                                                                    "print_output": False, "pw_a": ["1", 0]}}}
    result = Executor(registry).run(parse_workflow(prompt, registry), outputs=["2"])
    assert not result.ok and result.error["input"] == "pw_a"
    assert "item 2 (13333.333333333334)" in result.error["message"]
    prompt["1"]["inputs"]["text"] = "0:(0), 3:(3)"
    assert run_graph(registry, prompt, ["2"]).values["2"][0] == ["0.0", "1.0", "2.0", "3.0"]


def test_a_huge_batch_is_refused_before_it_runs(registry):
    from graphflow.validation import validate

    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": DEMO}},
              "2": {"class_type": "BatchPromptSchedule", "inputs": {"text": '"0": "a"', "clip": ["1", 1],
                                                                    "max_frames": 999999, "print_output": False}}}
    problems = validate(parse_workflow(prompt, registry), registry, ["2"])
    assert problems and problems[0].node_id == "2" and "memory" in problems[0].message


# -- ComfyUI formats ------------------------------------------------------------------------------

SCHEDULE_TEXT = '"0": "a red circle on a white background",\n"3": "a blue square on a white background"'


def test_ui_save_with_the_packs_nodes_reads_runs_and_round_trips(registry):
    """As community saves have them: every widget in widgets_values, the pack's forceInput ones
    (pre_text, app_text, pw_a..pw_d) converted to inputs, an unlinked one's value used; and a save
    without values for those (an editor making them bare sockets)."""
    text = SCHEDULE_TEXT.replace("circle", "(circle:`pw_a`)")
    schedule_widgets = [text, 4, False, "best quality", "4k", 0, 0, 0, 0, 0, 0]
    converted = [(name, kind, link, True) for name, kind, link in (
        ("pre_text", "STRING", None), ("app_text", "STRING", None), ("pw_a", "FLOAT", 2), ("pw_b", "FLOAT", None),
        ("pw_c", "FLOAT", None), ("pw_d", "FLOAT", None))]
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", [DEMO], outputs=[("MODEL", "MODEL", []), ("CLIP", "CLIP", [1]),
                                                             ("VAE", "VAE", [])]),
        ui_node(2, "BatchValueSchedule", ["0:(0.5), 3:(1.5)", 4, False], outputs=[("FLOAT", "FLOAT", [2, 3]),
                                                                                 ("INT", "INT", [])]),
        ui_node(3, "BatchPromptSchedule", schedule_widgets, [("clip", "CLIP", 1, False)] + converted,
                [("POS", "CONDITIONING", []), ("NEG", "CONDITIONING", [])]),
        ui_node(4, "BatchStringSchedule", [text, 4, False], [("pw_a", "FLOAT", 3, False)],
                [("POS", "STRING", []), ("NEG", "STRING", [])]),
        ui_node(5, "SinWave", [8.0, 0.5, 0.0, 0.5, 2], outputs=[("FLOAT", "FLOAT", []), ("INT", "INT", [])]),
        ui_node(6, "StringSchedule", [text, 4, 1, False, "best quality", "4k", 0.5, 0, 0, 0],
                outputs=[("POS", "STRING", []), ("NEG", "STRING", [])]),
    ]
    links = [[1, 1, 1, 3, 0, "CLIP"], [2, 2, 0, 3, 3, "FLOAT"], [3, 2, 0, 4, 0, "FLOAT"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["3", "4", "5", "6"])
    assert result.values["3"][0][0][0].shape[0] == 4
    values = [0.5 + (1.5 - 0.5) * f / 3 for f in range(3)]
    assert result.values["4"][0] == [f"a red (circle:{v}) on a white background" for v in values] + \
        ["a blue square on a white background"]
    assert result.values["6"][0] == "best quality a red (circle:0.5) on a white background 4k"
    assert result.values["5"][0] == pytest.approx(0.5 + 0.5 * math.sin(2 * math.pi * 2 / 8))
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert saved[3]["type"] == "BatchPromptSchedule" and saved[3]["widgets_values"] == schedule_widgets
    assert saved[4]["widgets_values"] == [text, 4, False, "", "", 0.0, 0.0, 0.0, 0.0]  # the pack's defaults
    assert saved[2]["widgets_values"] == ["0:(0.5), 3:(1.5)", 4, False]
    assert saved[5]["widgets_values"] == [8.0, 0.5, 0.0, 0.5, 2]


def test_older_batch_schedule_layouts_are_read(registry):
    """The pack's versions before end_frame (10 values) and before start_frame (9)."""
    for widgets in ([SCHEDULE_TEXT, 4, False, "pre", "app", 2, 0.5, 0, 0, 0],
                    [SCHEDULE_TEXT, 4, False, "pre", "app", 0.5, 0, 0, 0]):
        graph = ui_graph([ui_node(1, "CheckpointLoaderSimple", [DEMO], outputs=[("MODEL", "MODEL", []),
                                                                                ("CLIP", "CLIP", [1]),
                                                                                ("VAE", "VAE", [])]),
                          ui_node(2, "BatchPromptSchedule", widgets, [("clip", "CLIP", 1, False)],
                                  [("POS", "CONDITIONING", []), ("NEG", "CONDITIONING", [])])],
                         [[1, 1, 1, 2, 0, "CLIP"]])
        inputs = parse_workflow(graph, registry).nodes["2"].inputs
        assert (inputs["pre_text"], inputs["app_text"], inputs["pw_a"], inputs["end_frame"]) == ("pre", "app", 0.5, 0)
        assert inputs["start_frame"] == (2 if len(widgets) == 10 else 0)


API_PROMPT = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": DEMO}},
    "2": {"class_type": "PromptSchedule", "inputs": {"text": SCHEDULE_TEXT, "clip": ["1", 1], "max_frames": 6,
                                                     "current_frame": ["3", 1], "print_output": False,
                                                     "pre_text": "", "app_text": "", "pw_a": ["6", 0], "pw_b": 0.0,
                                                     "pw_c": 0.0, "pw_d": 0.0}},
    "3": {"class_type": "ValueSchedule", "inputs": {"text": "0:(1), 5:(t)", "max_frames": 6, "current_frame": ["4", 0],
                                                    "print_output": False}},
    "4": {"class_type": "CalculateFrameOffset", "inputs": {"current_frame": 0, "max_frames": 18,
                                                           "num_latent_inputs": 4, "index": 2}},
    "5": {"class_type": "StringSchedule", "inputs": {"text": SCHEDULE_TEXT, "max_frames": 6, "current_frame": 4,
                                                     "print_output": False, "pre_text": "", "app_text": "",
                                                     "pw_a": 0.0, "pw_b": 0.0, "pw_c": 0.0, "pw_d": 0.0}},
    "6": {"class_type": "BatchValueScheduleLatentInput", "inputs": {"text": "0:(0), 5:(1)", "num_latents": ["7", 0],
                                                                    "print_output": False}},
    "7": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 6}},
}


def test_api_prompt_with_the_packs_class_names_runs_and_round_trips(registry):
    result = run_graph(registry, API_PROMPT, ["2", "5"])
    assert result.values["3"] == (pytest.approx(1 + (5 - 1) * 2 / 5), 2)  # frame 2 between 0:(1) and t at 5
    assert result.values["5"] == ("a blue square on a white background", "")
    # the new editor sends no values for the pack's forceInput widgets: their defaults
    bare = {k: {**v, "inputs": {n: x for n, x in v["inputs"].items() if not n.startswith(("pre_", "app_", "pw_"))}}
            for k, v in API_PROMPT.items()}
    assert run_graph(registry, bare, ["5"]).values["5"] == result.values["5"]
    api = export_api(parse_workflow(API_PROMPT, registry), registry)
    assert {k: v["class_type"] for k, v in api.items()} == {k: v["class_type"] for k, v in API_PROMPT.items()}
    for node_id, entry in API_PROMPT.items():
        assert api[node_id]["inputs"] == entry["inputs"], node_id


def test_the_packs_classes_are_named_whole():
    for name in ("BatchPromptSchedule", "Lerp", "Init FizzFrame", "BatchGLIGENSchedule"):
        assert custom_pack(name) == "ComfyUI_FizzNodes"
    assert custom_pack("LerpLatents") is None


def test_object_info_lists_the_packs_inputs_as_it_does(registry):
    """ComfyUI clients of our server see the pack's required and optional inputs, in its order, with
    its forceInput ones as sockets."""
    from graphflow.server.comfyui_object_info import object_info

    info = object_info(registry)["BatchPromptSchedule"]
    assert info["input_order"] == {"required": ["text", "clip", "max_frames", "print_output"],
                                   "optional": ["pre_text", "app_text", "start_frame", "end_frame",
                                                "pw_a", "pw_b", "pw_c", "pw_d"]}
    optional = info["input"]["optional"]
    assert optional["pre_text"][1]["forceInput"] and optional["pw_a"][1]["forceInput"]
    assert "forceInput" not in optional["start_frame"][1] and info["output_name"] == ["POS", "NEG"]
    schedule = object_info(registry)["PromptSchedule"]["input"]["required"]
    assert list(schedule) == ["text", "clip", "max_frames", "current_frame", "print_output"]
    assert schedule["current_frame"][1]["forceInput"]


# -- limits on work and memory (review findings) ----------------------------------------------------


def test_a_big_whole_number_is_refused_before_any_long_power():
    """A 4000-digit literal to the power 10000 was one ~70 s big-number pow: now refused at once,
    while powers and shifts inside int64 still give Python's (numexpr's int64) values."""
    import time

    start = time.perf_counter()
    for text in ("9" * 4000 + "**10000", "9" * 20, "3**40", "1 << 63", "-(2**62) * 4"):
        with pytest.raises(OverflowError, match="past int64"):
            schedule_expression(text, {})
    assert time.perf_counter() - start < 1
    assert schedule_expression("3**39", {}) == 3 ** 39 and schedule_expression("1 << 62", {}) == 1 << 62
    assert schedule_expression("(-2)**63", {}) == (-2) ** 63 and schedule_expression("2**-3", {}) == 2 ** -3
    start = time.perf_counter()
    with pytest.raises(NodeInputError, match="past int64") as e:
        value_series("0:(" + "9" * 4000 + "**10000)", 3)
    assert e.value.input == "text" and time.perf_counter() - start < 1


def test_key_formulas_that_are_not_finite_are_named_errors(registry):
    for key, word in (("1e309", "inf"), ("1e309-1e309", "nan")):
        with pytest.raises(NodeInputError, match=f"keyframe '{key}' works out to {word}") as e:
            call(registry, "BatchStringSchedule", text=f'"0": "a", "{key}": "b"', max_frames=3)
        assert e.value.input == "text"
        with pytest.raises(NodeInputError, match=f"works out to {word}"):
            value_series(f'0:(1), "{key}":(2)', 3)
    from nodes.pack_nodes_fizz import sdxl_schedule

    with pytest.raises(NodeInputError, match="works out to inf") as e:
        sdxl_schedule(_sdxl_node('"0": "a", "1e309": "b"', ""), 3)
    assert e.value.input == "text_g"


def _sdxl_node(text_g, text_l):
    from types import SimpleNamespace

    node = SimpleNamespace(text_g=text_g, text_l=text_l, pre_text_G="g", app_text_G="", pre_text_L="",
                           app_text_L="l", pw_a=0.0, pw_b=0.0, pw_c=0.0, pw_d=0.0)
    node.prompt_weights = lambda: {"pw_a": 0.0, "pw_b": 0.0, "pw_c": 0.0, "pw_d": 0.0}
    return node


def test_sdxl_frames_follow_the_packs_refill_loop_in_one_pass():
    """Against the pack's loop (BatchInterpolatePromptsSDXL: for each tower, g then l, and each pair
    a < b, frames a..b-1 blended, every frame from b on the pair at weight 0), on random schedules;
    and one frame of 200 keyframes at 999999 frames is worked out without filling every frame."""
    import random
    import time

    from nodes.pack_nodes_fizz import sdxl_schedule

    def refilled(node, max_frames):
        series = [None] * max_frames
        for text, pre, app in ((node.text_g, node.pre_text_G, node.app_text_G),
                               (node.text_l, node.pre_text_L, node.app_text_L)):
            # with_pre_and_app's pre and app texts, then once more
            keyed = sorted((int(k), f"{pre} {pre} {p} {app} {app}") for k, p in prompt_keyframes(text).items())
            for (a, prompt), (b, following) in zip(keyed, keyed[1:]):
                if a >= b:
                    continue
                for f in range(max(a, 0), min(b, max_frames)):
                    series[f] = (prompt.strip(), following.strip(), 1 - (f - a) / (b - a))
                for f in range(max(b, 0), max_frames):
                    series[f] = (prompt.strip(), following.strip(), 0.0)
        return series

    rng = random.Random(3)
    for _ in range(60):
        texts = [",".join(f'"{k}": "p{k}"' for k in rng.sample(range(-3, 30), count)) for count in
                 (rng.randint(2, 5), rng.choice([0, 2, 3]))]
        if not texts[0].startswith('"') or '"0"' not in texts[0] + texts[1]:
            texts[0] = '"0": "start",' + texts[0]
        max_frames = rng.randint(1, 40)
        node = _sdxl_node(*texts)
        try:
            expected = refilled(node, max_frames)
        except ValueError:
            continue
        if None in expected:
            continue
        schedule = sdxl_schedule(node, max_frames)
        assert schedule.positive == [row[:2] for row in expected]
        assert schedule.weights == pytest.approx([row[2] for row in expected])
    node = _sdxl_node(",".join(f'"{k * 20}": "p{k}"' for k in range(200)), "")
    start = time.perf_counter()
    schedule = sdxl_schedule(node, 999999, [3970])
    assert time.perf_counter() - start < 2
    assert schedule.positive[0] == ("g g p198", "g g p199") and schedule.weights[0] == pytest.approx(1 - 10 / 20)


def test_formula_texts_over_the_frames_are_held_to_max_text(registry):
    from nodes.strings import MAX_TEXT

    prompt = "x" * 10_000 + " `t`"
    frames = MAX_TEXT // 10_000 + 10
    with pytest.raises(NodeInputError, match="MAX_TEXT|characters|longer") as e:
        call(registry, "BatchStringSchedule", text=f'"0": "{prompt}"', max_frames=frames)
    assert e.value.input == "text"
    pos, _ = call(registry, "BatchStringSchedule", text=f'"0": "{prompt}"', max_frames=20)
    assert pos[19] == "x" * 10_000 + " 19"


def test_formulas_are_parsed_once_and_their_work_is_capped(registry, monkeypatch):
    import nodes.pack_nodes_fizz as fizz

    parsed = []
    real = fizz.formula_tree
    monkeypatch.setattr(fizz, "formula_tree", lambda text: parsed.append(text) or real(text))
    values = value_series("0:(sin(t / 7) * max_f)", 500)
    assert values == [math.sin(f / 7) * 499 for f in range(500)] and len(parsed) == 1
    pos, _ = call(registry, "BatchStringSchedule", text='"0": "a `t*2`", "9": "b"', max_frames=100)
    assert pos[3] == "a 6" and parsed.count("t*2") == 1
    monkeypatch.setattr(fizz, "FORMULA_WORK", 10_000)
    with pytest.raises(NodeInputError, match="10,000 steps") as e:
        call(registry, "BatchValueSchedule", text="0:(" + "+".join(["t"] * 50) + ")", max_frames=1000)
    assert e.value.input == "text"


def test_value_formulas_see_the_packs_i_and_max_frames():
    assert value_series("0:(sin(i / max_frames) + t)", 12) == [math.sin(f / 12) + f for f in range(12)]


def test_long_value_schedules_parse_in_linear_time():
    """Line numbers were counted for every entry (20 000 entries: 28 s); now only for an error. Ten
    times the entries take about ten times as long (quadratic: a hundred); compared in one run, so a
    loaded machine slows both alike (the best of three of each)."""
    import time

    def seconds(count):
        text = ",\n".join(f"{f}:({f % 7})" for f in range(count))
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            values = value_series(text, count)
            best = min(best, time.perf_counter() - start)
        assert values[:8] == [0, 1, 2, 3, 4, 5, 6, 0][:count]
        return best, text

    small, _ = seconds(2_000)
    large, text = seconds(20_000)
    assert large < 35 * small, (small, large)
    with pytest.raises(NodeInputError, match=r"line 20001 \('20000:\(foo\)'\)"):
        value_series(text + ",\n20000:(foo)", 20_002)


def test_prompt_text_is_parsed_without_per_character_lists():
    import tracemalloc

    text = ",\n".join(f'"{f}": "{"word " * 100}"' for f in range(10_000))  # about 5 MB
    tracemalloc.start()
    try:
        parsed = prompt_keyframes(text + ",\n")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(parsed) == 10_000 and peak < 8 * len(text)  # the lists took ~90 bytes a character
    with pytest.raises(NodeInputError, match=r"line 10001 \('\"x\" \"y\"'\)"):
        prompt_keyframes(text + ',\n"x" "y"')


def test_error_messages_cut_the_users_formula():
    formula = "+".join(["t"] * 900) + "+foo"
    with pytest.raises(NodeInputError) as e:
        value_series(f"0:({formula})", 2)
    assert "unknown name 'foo'" in str(e.value) and len(str(e.value)) < 400


def test_image_picks_are_bounded_and_checked(registry, monkeypatch):
    import nodes.pack_nodes_fizz as fizz
    from graphflow.resource_limits import RunLimits

    images = torch.rand(3, 8, 8, 3)
    with pytest.raises(NodeInputError, match="before the batch's first") as e:
        call(registry, "ImagesFromBatchSchedule", images=images, text='"0": "-10"', max_frames=2)
    assert e.value.input == "text"
    torch.testing.assert_close(call(registry, "ImagesFromBatchSchedule", images=images, text='"0": "-2"',
                                    max_frames=2), images[[-3]])  # 1-based: -2 is three from the end
    monkeypatch.setattr(fizz, "run_limits", lambda: RunLimits(max_batch=64))
    with pytest.raises(NodeInputError, match="more than 64 images") as e:
        call(registry, "ImagesFromBatchSchedule", images=images, text='"0": "' + ",".join(["1:"] * 2000) + '"',
             max_frames=2)
    assert e.value.input == "text"
    out = call(registry, "ImagesFromBatchSchedule", images=images, text='"0": "' + ",".join(["1:"] * 21) + '"',
               max_frames=2)
    assert out.shape[0] == 63


def test_bare_socket_saves_of_older_batch_schedule_layouts(registry):
    """[text, max_frames, print_output, start_frame] (before end_frame, the forceInput inputs bare
    sockets) was read shifted: pre_text '2'."""
    cls = registry.get("BatchPromptSchedule")
    assert cls.comfy.widgets(["T", 4, False, 2]) == ["T", 4, False, "", "", 2, 0, 0.0, 0.0, 0.0, 0.0]
    assert cls.comfy.widgets(["T", 4, False]) == ["T", 4, False, "", "", 0, 0, 0.0, 0.0, 0.0, 0.0]
    latent = registry.get("BatchPromptScheduleLatentInput")
    assert latent.comfy.widgets(["T", False, 2]) == ["T", False, "", "", 2, 0, 0.0, 0.0, 0.0, 0.0]
    graph = ui_graph([ui_node(1, "CheckpointLoaderSimple", [DEMO], outputs=[("MODEL", "MODEL", []),
                                                                            ("CLIP", "CLIP", [1]), ("VAE", "VAE", [])]),
                      ui_node(2, "BatchPromptSchedule", [SCHEDULE_TEXT, 4, False, 2], [("clip", "CLIP", 1, False)],
                              [("POS", "CONDITIONING", []), ("NEG", "CONDITIONING", [])])],
                     [[1, 1, 1, 2, 0, "CLIP"]])
    inputs = parse_workflow(graph, registry).nodes["2"].inputs
    assert (inputs["pre_text"], inputs["start_frame"], inputs["end_frame"]) == ("", 2, 0)


def test_a_bad_linked_list_is_named_briefly_and_text_items_are_refused(registry):
    prompt = {"1": {"class_type": "BatchValueSchedule", "inputs": {"text": "0:(0), 99999:(99999)",
                                                                   "max_frames": 100_000, "print_output": False}},
              "2": {"class_type": "BatchStringSchedule", "inputs": {"text": '"0": "`pw_a`"', "max_frames": 4,
                                                                    "print_output": False, "pw_a": ["1", 0]}}}
    result = Executor(registry).run(parse_workflow(prompt, registry), outputs=["2"])
    assert not result.ok and result.error["input"] == "pw_a" and "item 10000 " in result.error["message"]
    assert len(result.error["message"]) < 500
    from pydantic import ValidationError

    model = registry.get("BatchStringSchedule").linked_widget_model  # a FLOAT output's run() returning these
    for bad in (["1.5"], [1.0, True], "1.5", True):
        with pytest.raises(ValidationError, match="valid number|expected a number"):
            model.model_validate({"text": '"0": "a"', "pw_a": bad})
    assert model.model_validate({"text": '"0": "a"', "pw_a": [1, 2.5]}).pw_a == [1, 2.5]


def test_sdxl_batch_estimates_count_sdxls_width(registry):
    for name, widgets, inputs in (("BatchPromptScheduleEncodeSDXL", {"max_frames": 10}, {}),):
        assert registry.get(name).estimate(widgets, inputs).memory == 10 * 2 * 77 * 2048 * 4
    assert registry.get("BatchPromptSchedule").estimate({"max_frames": 10}, {}).memory == 10 * 2 * 77 * 768 * 4
