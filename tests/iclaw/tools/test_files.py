import pytest


@pytest.mark.anyio
async def test_read_line_ranges_and_write_then_edit(workspace, registry):
    (workspace / "notes.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    part = await registry.call("read_file", {"path": "notes.txt", "start_line": 3, "end_line": 4})
    assert part.content.startswith("line 3\nline 4\n") and "[lines 3-4 of 10]" in part.content
    whole = await registry.call("read_file", {"path": "notes.txt"})
    assert whole.content == (workspace / "notes.txt").read_text()
    wrote = await registry.call("write_file", {"path": "out/new.txt", "content": "alpha\nbeta\n"})
    assert wrote.ok and (workspace / "out" / "new.txt").read_text() == "alpha\nbeta\n"
    edit = await registry.call("edit_file", {"path": "out/new.txt", "search": "beta", "replace": "gamma"})
    assert edit.ok and (workspace / "out" / "new.txt").read_text() == "alpha\ngamma\n"


@pytest.mark.anyio
async def test_edit_requires_exact_unique_search_text(workspace, registry):
    (workspace / "a.py").write_text("x = 1\nx = 1\ny = 2\n")
    missing = await registry.call("edit_file", {"path": "a.py", "search": "z = 3", "replace": "z = 4"})
    assert not missing.ok and "not found" in missing.content and missing.error_kind == "invalid_arguments"
    twice = await registry.call("edit_file", {"path": "a.py", "search": "x = 1", "replace": "x = 5"})
    assert not twice.ok and "2 times" in twice.content
    assert (workspace / "a.py").read_text() == "x = 1\nx = 1\ny = 2\n"


@pytest.mark.anyio
async def test_missing_binary_and_directory_paths_are_clear_failures(workspace, registry):
    (workspace / "blob.bin").write_bytes(b"\x00\x01\x02")
    (workspace / "d").mkdir()
    assert "no such file" in (await registry.call("read_file", {"path": "nope.txt"})).content
    assert "binary" in (await registry.call("read_file", {"path": "blob.bin"})).content
    assert "directory" in (await registry.call("read_file", {"path": "d"})).content


@pytest.mark.anyio
async def test_list_glob_grep(workspace, registry):
    (workspace / "src").mkdir()
    (workspace / "src" / "app.py").write_text("def main():\n    return 42\n")
    (workspace / "README.md").write_text("see main\n")
    listing = await registry.call("list_dir", {"depth": 2})
    assert "src/" in listing.content and "src/app.py" in listing.content
    assert (await registry.call("glob", {"pattern": "**/*.py"})).content == "src/app.py"
    grep = await registry.call("grep", {"pattern": r"return \d+", "glob": "*.py"})
    assert grep.content == "src/app.py:2:     return 42"
    bad = await registry.call("grep", {"pattern": "("})
    assert bad.error_kind == "invalid_arguments"


@pytest.mark.parametrize("text, lines", [("", 0), ("hi there\n", 1), ("hi there", 1), ("a\nb", 2), ("a\nb\n", 2), ("\n\n", 2)])
def test_count_lines_counts_newlines_plus_an_unterminated_last_line(text, lines):
    from iclaw.tools.files import count_lines

    assert count_lines(text) == lines


@pytest.mark.anyio
async def test_write_and_edit_messages_give_true_line_counts(workspace, registry):
    wrote = await registry.call("write_file", {"path": "hi.txt", "content": "hi there\n"})
    assert wrote.content == "wrote 9 bytes (1 line) to hi.txt"
    edit = await registry.call("edit_file", {"path": "hi.txt", "search": "hi there\n", "replace": "one\ntwo\n"})
    assert edit.content == "edited hi.txt: replaced 1 line with 2 lines"
