"""Tests of the docs runner itself (no harness needed): python3 -m unittest tests/docs/test_run.py"""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402

MD = """# x

```python
print(1)
```

1. a list item:

   ```sh norun a build step
   make it
   ```

```yaml
a: 1
```

```
plain
```

````md norun shows a fence
```python
inner
```
````

```sh recipe=python
true
```
"""


class ParseTest(unittest.TestCase):
    def test_blocks_and_fence_info(self):
        bs = run.parse("X.md", MD)
        self.assertEqual([(b.line, b.lang) for b in bs],
                         [(3, "python"), (9, "sh"), (13, "yaml"), (17, ""), (21, "md"), (27, "sh")])
        self.assertEqual(bs[0].text, "print(1)\n")
        self.assertEqual(bs[1].text, "make it\n")          # the list item's indent removed
        self.assertTrue(bs[1].flag("norun"))
        self.assertEqual(bs[1].reason, "a build step")
        self.assertEqual(bs[0].reason, "")
        self.assertIsNone(bs[0].flag("norun"))
        self.assertEqual(bs[4].text, "```python\ninner\n```\n")   # a longer fence holds a shorter one
        self.assertEqual(bs[5].flag("recipe"), "python")

    def test_unmarked_block_in_unknown_language_fails(self):
        errors = run.check_marks(run.parse("X.md", MD))
        self.assertEqual(len(errors), 2, errors)
        self.assertIn("X.md:13: a ```yaml block", errors[0])
        self.assertIn("```yaml norun WHY```", errors[0])
        self.assertIn("X.md:17: a ```(no language) block", errors[1])

    def test_norun_without_a_reason_fails(self):
        errors = run.check_marks(run.parse("X.md", "```sh norun\nmake it\n```\n"))
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("X.md:1: ```sh norun``` without a reason", errors[0])

    def test_unknown_recipe_language_fails(self):
        errors = run.check_marks(run.parse("X.md", "```sh recipe=cobol\ntrue\n```\n"))
        self.assertEqual(len(errors), 1)
        self.assertIn("recipe=cobol", errors[0])

    def test_unclosed_fence_fails(self):
        with self.assertRaises(SystemExit) as e:
            run.parse("X.md", "```python\nprint(1)\n")
        self.assertIn("X.md:1: unclosed", str(e.exception))

    def test_the_readmes_are_marked(self):
        blocks = [b for p in run.FILES for b in run.extract(p)]
        self.assertEqual(run.check_marks(blocks), [])
        langs = {b.lang for b in blocks if not b.flag("norun")}
        self.assertTrue({"python", "js", "php", "ruby", "go", "c", "java", "csharp", "sh"} <= langs, langs)


class ExecuteTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.r = run.Runner(dict(os.environ), self.tmp.name, False)

    def tearDown(self):
        self.tmp.cleanup()

    def block(self, text):
        return run.parse("X.md", f"```sh\n{text}\n```\n")[0]

    def test_a_block_must_show_the_role(self):
        self.assertIn(run.EXPECTED_ROLE, self.r.execute(self.block(f"echo {run.EXPECTED_ROLE}")))
        with self.assertRaises(run.BlockError) as e:
            self.r.execute(self.block("echo connected"))
        self.assertIn("does not show the database role", str(e.exception))

    def test_a_failing_block_fails_without_showing_a_token(self):
        token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
        with self.assertRaises(run.BlockError) as e:
            self.r.execute(self.block(f"echo {run.EXPECTED_ROLE} password={token}; exit 3"))
        self.assertIn("exited 3", str(e.exception))
        self.assertNotIn(token, str(e.exception))
        self.assertIn("password=<token>", str(e.exception))


if __name__ == "__main__":
    unittest.main()
