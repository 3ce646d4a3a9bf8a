"""`anyv2v manifest from-*`: each benchmark layout on a small fabricated sample in that
layout; the written manifest is what `anyv2v batch` reads (no model needed)."""

import csv
import json

import pytest
from typer.testing import CliRunner

from anyv2v_core import manifests, video
from anyv2v_core.batch import parse_manifest
from anyv2v_core.cli import app
from anyv2v_core.errors import InputError
from anyv2v_core.testing.tiny import synthetic_frames



def run(*args):
    return CliRunner().invoke(app, ["manifest", *map(str, args)])


def frames_folder(folder, n=3, ext="png"):
    folder.mkdir(parents=True)
    for i, f in enumerate(synthetic_frames(n, 32, 32)):
        f.save(folder / f"{i:05d}.{ext}")
    return folder


def image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    synthetic_frames(1, 32, 32)[0].save(path)
    return path


# -- AnyV2V prompt lists --------------------------------------------------------------------------
def test_from_anyv2v(tmp_path):
    root = tmp_path / "AnyV2V"
    frames_folder(root / "demo" / "Man Walking")
    video.write_video(synthetic_frames(3, 32, 32), root / "demo" / "Ballet.mp4", fps=8)
    image(root / "demo" / "Man Walking" / "edited_first_frame" / "vader.png")
    image(root / "demo" / "Ballet" / "edited_first_frame" / "van gogh style.png")
    config = [
        {"active": True, "task_name": "Prompt-Based-Editing", "video_name": "Man Walking",
         "edited_first_frame_path": "demo/Man Walking/edited_first_frame/vader.png", "editing_prompt": "darth vader walking",
         "edited_video_name": "darth vader walking", "ddim_init_latents_t_idx": 0, "pnp_f_t": 0.1,
         "pnp_spatial_attn_t": 0.1, "pnp_temp_attn_t": 1.0},
        {"active": False, "task_name": "Style-Transfer", "video_name": "Ballet",
         "edited_first_frame_path": "demo/Ballet/edited_first_frame/van gogh style.png",
         "editing_prompt": "girl dancing ballet, in the style of van gogh",
         "edited_video_name": "girl dancing ballet, in the style of van gogh"},
    ]
    cfg = tmp_path / "group_config.json"
    cfg.write_text(json.dumps(config))
    out = tmp_path / "jobs" / "anyv2v.jsonl"
    out.parent.mkdir()
    r = run("from-anyv2v", cfg, "--root", root, "-o", out)
    assert r.exit_code == 0, r.output
    assert "wrote 1 items" in r.output  # the inactive entry is left out
    (item,) = parse_manifest(out, tmp_path / "o")
    assert item.id == "Man-Walking-darth-vader-walking" and item.prompt == "darth vader walking"
    assert item.source.resolve() == root / "demo" / "Man Walking"  # the frames folder, as the official code prefers
    assert item.edited_frame.resolve() == root / "demo" / "Man Walking" / "edited_first_frame" / "vader.png"
    assert item.overrides == {"t_idx": 0, "tau_conv": 0.1, "tau_sa": 0.1, "tau_ta": 1.0}
    assert item.meta == {"benchmark": "anyv2v", "video": "Man Walking", "kind": "Prompt-Based-Editing"}
    assert json.loads(out.read_text().splitlines()[1])["source"] == "../AnyV2V/demo/Man Walking"  # relative paths

    r = run("from-anyv2v", cfg, "--root", root, "-o", out, "--all")
    assert r.exit_code == 2 and "exists; pass --force" in r.output
    r = run("from-anyv2v", cfg, "--root", root, "-o", out, "--all", "--force", "--backbone", "i2vgenxl")
    assert r.exit_code == 0, r.output
    items = parse_manifest(out, tmp_path / "o")
    assert [i.source.name for i in items] == ["Man Walking", "Ballet.mp4"]  # Ballet has no frames folder
    assert items[1].overrides == {} and items[1].meta["kind"] == "Style-Transfer"


# -- LOVEU-TGVE-2023 ------------------------------------------------------------------------------
TGVE_HEADER = ["Video name", "Our GT caption", "Style Change Caption", "Object Change Caption",
               "Background Change Caption", "Multiple Changes Caption"]


def tgve_sample(tmp_path):
    path = tmp_path / "LOVEU-TGVE-2023_Dataset.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["DAVIS_480p", "", "", "", "", ""])  # a section name above the header
        w.writerow(TGVE_HEADER)
        w.writerow(["blackswan", "A black swan swimming.", "A black swan swimming, Van Gogh style.",
                    "A white duck swimming.", "A black swan swimming in the ocean.", "A white duck in the ocean, anime."])
        w.writerow(["", "", "", "", "", ""])
        w.writerow(["youtube_480p", "", "", "", "", ""])
        w.writerow(TGVE_HEADER)  # the header again under each section
        w.writerow(["cat-in-the-sun", "A cat in the sun.", "A cat in the sun, ukiyo-e style.", "A dog in the sun.",
                    "A cat on the moon.", "A dog on the moon, cartoon."])
    videos = tmp_path / "LOVEU-TGVE-2023"
    (videos / "DAVIS_480p" / "480p_videos").mkdir(parents=True)
    video.write_video(synthetic_frames(3, 32, 32), videos / "DAVIS_480p" / "480p_videos" / "blackswan.mp4", fps=8)
    frames_folder(videos / "youtube_480p" / "480p_frames" / "cat-in-the-sun", ext="jpg")
    return path, videos


def test_from_tgve(tmp_path):
    csv_path, videos = tgve_sample(tmp_path)
    edits = tmp_path / "edits"
    for item_id in ("blackswan-style", "blackswan-object", "cat-in-the-sun-style"):
        image(edits / f"{item_id}.png")
    out = tmp_path / "tgve.jsonl"
    r = run("from-tgve", csv_path, "--videos", videos, "--edited-frames", edits, "--kinds", "style,object", "-o", out)
    assert r.exit_code == 2 and "no edited first frame in" in r.output and "cat-in-the-sun-object" in r.output
    image(edits / "cat-in-the-sun-object.jpg")
    r = run("from-tgve", csv_path, "--videos", videos, "--edited-frames", edits, "--kinds", "style,object", "-o", out)
    assert r.exit_code == 0, r.output
    items = parse_manifest(out, tmp_path / "o")
    assert [i.id for i in items] == ["blackswan-style", "blackswan-object", "cat-in-the-sun-style",
                                     "cat-in-the-sun-object"]
    assert items[0].source.resolve() == videos / "DAVIS_480p" / "480p_videos" / "blackswan.mp4"
    assert items[2].source.resolve() == videos / "youtube_480p" / "480p_frames" / "cat-in-the-sun"
    assert items[1].prompt == "A white duck swimming." and items[3].edited_frame.resolve() == edits / "cat-in-the-sun-object.jpg"
    assert items[3].meta == {"benchmark": "tgve", "video": "cat-in-the-sun", "kind": "object",
                             "section": "youtube_480p", "source_prompt": "A cat in the sun."}
    assert items[0].meta["section"] == "DAVIS_480p"
    assert out.read_text().startswith("# from ")


def test_tgve_errors_are_one_line(tmp_path):
    csv_path, videos = tgve_sample(tmp_path)
    with pytest.raises(InputError, match="unknown TGVE edit kind.*colour"):
        manifests.read_tgve(csv_path, videos, ["style", "colour"])
    (videos / "DAVIS_480p" / "480p_videos" / "blackswan.mp4").unlink()
    with pytest.raises(InputError, match="no video or frames folder named 'blackswan'"):
        manifests.read_tgve(csv_path, videos)
    bad = tmp_path / "bad.csv"
    bad.write_text("name,caption\nx,y\n")
    with pytest.raises(InputError, match="no header row starting with 'Video name'"):
        manifests.read_tgve(bad, videos)


# -- FiVE-Bench -----------------------------------------------------------------------------------
def test_from_five_with_an_editor(tmp_path, plugin_site):
    plugin_site("anyv2v-fake-ip2p", "anyv2v_fake_ip2p_mod", """
from anyv2v_core import hookimpl
from anyv2v_core.protocols import EditorOption

@hookimpl
def anyv2v_register_editors(register):
    register("fakeip2p", "nowhere:Editor", options=[EditorOption("instruction", "str", required=True)])
""", entry_name="fakeip2p")
    root = tmp_path / "data_FiVE"
    frames_folder(root / "images" / "bear", ext="jpg")
    frames_folder(root / "images" / "car-turn", ext="jpg")
    annotations = [
        {"video_name": "bear", "source_prompt": "a [brown] bear walking", "target_prompt": "a [white] bear walking",
         "editing_type_id": "1", "save_dir": "bear_white"},
        {"video_name": "car-turn", "source_prompt": "a [red] car", "target_prompt": "a [blue] car",
         "editing_type_id": "1", "save_dir": "car_blue", "editing_instruction": "make the car blue"},
    ]
    ann = root / "edit_prompt" / "edit1_FiVE.json"
    ann.parent.mkdir()
    ann.write_text(json.dumps(annotations))
    out = tmp_path / "five.jsonl"
    r = run("from-five", ann, "--root", root, "--editor", "fakeip2p", "-o", out)
    assert r.exit_code == 0, r.output
    a, b = parse_manifest(out, tmp_path / "o")
    assert (a.id, a.prompt, a.source.resolve()) == ("edit1_FiVE-bear-bear_white", "a white bear walking", root / "images" / "bear")
    assert a.editor == "fakeip2p" and a.editor_options == {"instruction": "a white bear walking"}
    assert b.editor_options == {"instruction": "make the car blue"}  # the benchmark's instruction when it has one
    assert a.meta == {"benchmark": "five", "file": "edit1_FiVE", "video": "bear", "kind": "1",
                      "source_prompt": "a brown bear walking"}
    # without --editor or --edited-frames: one line saying what to pass
    r = run("from-five", ann, "--root", root, "-o", tmp_path / "x.jsonl")
    assert r.exit_code == 2 and "--edited-frames DIR" in r.output and not (tmp_path / "x.jsonl").exists()
    ann.write_text(json.dumps([{"video_name": "bear"}]))
    r = run("from-five", ann, "--root", root, "--editor", "fakeip2p", "-o", tmp_path / "x.jsonl")
    assert r.exit_code == 2 and "entry 0 lacks target_prompt" in r.output
