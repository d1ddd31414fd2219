"""Visual Turing tests: build an offline HTML test and its answer key, read responses, analyse them with the
paper's measures (precision, recall, accuracy, FPR, FNR; Likert scores) and statistics (Pearson correlations,
permutation tests), and draw the figures. `shuffled_order` rebuilds a rater's order from the seed in their
export. The paper's own Table 1 and Table 2 live in `paper_tables`."""

from medgan_core.turing.analysis import TuringResults, analyze, compare_sections, confusion_rates
from medgan_core.turing.build import TuringBuildError, TuringTest, build_turing_test, sample_test
from medgan_core.turing.order import shuffled_order
from medgan_core.turing.responses import TuringDataError, load_key, load_responses
from medgan_core.turing.stats import (
    ALPHA_FID,
    ALPHA_TURING,
    mean_confidence_interval,
    pearson,
    permutation_test_means,
)

__all__ = [
    "ALPHA_FID",
    "ALPHA_TURING",
    "TuringBuildError",
    "TuringDataError",
    "TuringResults",
    "TuringTest",
    "analyze",
    "build_turing_test",
    "compare_sections",
    "confusion_rates",
    "load_key",
    "load_responses",
    "mean_confidence_interval",
    "pearson",
    "permutation_test_means",
    "sample_test",
    "shuffled_order",
]
