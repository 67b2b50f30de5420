"""The TrainerCallback without transformers installed: the package imports without it, and the callback needs it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import unittest
from pathlib import Path

from loracast import AdapterPublisher, TrainerClient, publishing_callback

ROOT = Path(__file__).resolve().parent.parent


class LazyImportTest(unittest.TestCase):
    def test_the_package_imports_nothing_outside_the_standard_library(self) -> None:
        # A fresh interpreter: which modules does `import loracast` load that are not the stdlib's?
        code = (
            "import sys; before = set(sys.modules); import loracast; "
            "extra = [m for m in set(sys.modules) - before if not m.startswith('loracast') "
            "and m.split('.')[0] not in sys.stdlib_module_names]; print(sorted(extra))"
        )
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        self.assertEqual(out.stdout.strip(), "[]")

    def test_the_callback_imports_transformers_when_it_is_made(self) -> None:
        client = TrainerClient("http://127.0.0.1:1", "t")
        if importlib.util.find_spec("transformers") is None:  # CI: the callback says what it needs
            with self.assertRaises(ModuleNotFoundError) as caught:
                publishing_callback(client, "r")
            self.assertEqual(caught.exception.name, "transformers")
        else:
            import transformers

            self.assertIsInstance(publishing_callback(client, "r"), transformers.TrainerCallback)

    def test_every_n_steps_must_be_positive(self) -> None:
        with self.assertRaises(ValueError):
            AdapterPublisher(TrainerClient("http://127.0.0.1:1", "t"), "r", 0)


if __name__ == "__main__":
    unittest.main()
