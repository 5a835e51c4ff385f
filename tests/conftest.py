import os
import tempfile

# one kernel cache per test session unless the caller chose one
os.environ.setdefault("EPCAL_CACHE_DIR", os.path.join(tempfile.gettempdir(), "epcal-test-cache"))
