"""Edits through OpenAI's official Python client against a running fluxserve (EditsEndToEndTests).

Calls client.images.edit with one image, with an image and a mask, and with a list of one image (which the SDK
sends as an `image[]` part), each as b64_json, and prints one JSON line: {case: [[width, height], ...]}.
Usage: python openai_edit_client.py --base-url http://127.0.0.1:PORT/v1 --image image.png --mask mask.png
"""
import argparse
import base64
import json
import struct

from openai import OpenAI


def png_size(data: bytes) -> list:
    """Width and height from a PNG's IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return list(struct.unpack(">II", data[16:24]))


def sizes(response) -> list:
    return [png_size(base64.b64decode(item.b64_json)) for item in response.data]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--mask", required=True)
    args = parser.parse_args()
    client = OpenAI(base_url=args.base_url, api_key="unused-without-keys", max_retries=0, timeout=240)
    # Few steps keep it quick on the demo model; extra_body adds our own fields to the form.
    ours = {"steps": 4, "seed": 1}
    results = {}
    with open(args.image, "rb") as image:
        results["without_mask"] = sizes(client.images.edit(
            image=image, prompt="a red circle", size="64x64", response_format="b64_json", extra_body=ours))
    with open(args.image, "rb") as image, open(args.mask, "rb") as mask:
        results["with_mask"] = sizes(client.images.edit(
            image=image, mask=mask, prompt="a red circle", size="64x64", n=2, response_format="b64_json",
            extra_body=ours))
    with open(args.image, "rb") as image:
        results["image_list"] = sizes(client.images.edit(
            image=[image], prompt="a blue square", size="64x64", response_format="b64_json", model="gpt-image-1",
            extra_body=ours))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
