"""The tutorial's HelloHD server: same as ``server.py hello``.

    python twisted/hello.py --port P [--interface 127.0.0.1]
"""
import os
import sys

sys.argv[1:1] = ["hello"]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server  # noqa: E402

sys.exit(server.main())
