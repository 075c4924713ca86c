"""What every internal call pays for in its HTTP client (httpx over httpcore)."""

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

from httpcore._synchronization import current_async_library


class ImportsSeen(importlib.abc.MetaPathFinder):
    """Records every module the import system is asked to look for on sys.path."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        self.names.append(fullname)
        return None


async def test_httpcore_learns_the_event_loop_without_searching_for_a_module() -> None:
    # httpcore runs `import sniffio` several times per request it sends; without sniffio
    # installed each is a failed import, a search of every sys.path entry, every time.
    seen = ImportsSeen()
    sys.meta_path.insert(0, seen)
    try:
        assert current_async_library() == "asyncio"
    finally:
        sys.meta_path.remove(seen)
    assert seen.names == []
