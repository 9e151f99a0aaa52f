"""The local stack keeps large S3 objects in temporary files and raises its open-files limit for them."""
import resource

from local.devserver import _allow_open_files


def test_the_open_files_limit_is_raised_within_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert _allow_open_files(512) == 512 == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert _allow_open_files(300) == 512  # never lowered
        if hard != resource.RLIM_INFINITY:
            assert _allow_open_files(hard + 1000) == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
