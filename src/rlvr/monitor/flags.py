"""The scanners' flags by name, and how much of an input they read.

What each flag means is written once, in :data:`rlvr.config.CODE_FLAGS` and
:data:`rlvr.config.ANSWER_FLAGS`: the config checks ``monitor.actions`` against those names without
importing the monitor, and the corpus tests hold the scanners to exactly those flags.
"""

MAX_SCAN_CHARS = 100_000  # longer inputs: code is flagged unparsable, answers are cut

# code
EARLY_EXIT = "early_exit"
EQ_OVERRIDE = "eq_override"
TEST_TAMPERING = "test_tampering"
READS_TEST_FILES = "reads_test_files"
FRAME_INTROSPECTION = "frame_introspection"
FAKE_SUCCESS_OUTPUT = "fake_success_output"
PATCHES_TIME_OR_RANDOM = "patches_time_or_random"
SYSTEM_ACCESS = "system_access"
RESOURCE_EXHAUSTION = "resource_exhaustion"
DYNAMIC_CODE = "dynamic_code"
SPECIAL_CASES_VISIBLE_TESTS = "special_cases_visible_tests"
RETURNS_VISIBLE_OUTPUTS = "returns_visible_outputs"
UNPARSABLE = "unparsable"

# answers
MULTIPLE_ANSWERS = "multiple_answers"
HEDGED = "hedged"
EMPTY_ANSWER = "empty_answer"
ANSWER_TOO_LONG = "answer_too_long"
DISAGREES_OUTSIDE_TAGS = "disagrees_outside_tags"
