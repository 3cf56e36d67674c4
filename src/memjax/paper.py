"""Published bAbI numbers to print beside ours (test error in percent, tasks 1..20).

Sources: Sukhbaatar et al. 2015, "End-To-End Memory Networks", Table 1 (bAbI 1k, 3 hops);
Xiong et al. 2016, "Dynamic Memory Networks for Visual and Textual Question Answering" (bAbI 10k).
The joint row is quoted in docs/reproduction.md. The strongly supervised MemNN row (Weston et al. 2015,
"Towards AI-complete question answering", MemNN with adaptive memory, n-grams and non-linearity, as
also printed in the MemN2N paper's Table 1) is per task from that table; its mean (6.65, printed 6.7)
and its 4 failed tasks match docs/reproduction.md. The per-task "PE LS RN" row was taken from the
paper's Table 1; its mean (13.9) and number of failed tasks (11) match the paper's summary rows.
The LSTM row (weakly supervised, bAbI 1k) is the LSTM column of the MemN2N paper's Table 1 (from Weston
et al. 2015): its mean is 51.3 and all 20 tasks fail, as in docs/reproduction.md. Weston et al.'s
table, as the Keras bAbI RNN example quotes it, has the same numbers as accuracies except task 11
(72% accuracy, 28 error).
The strongly supervised DMN row (bAbI 1k) is Kumar et al. 2016, "Ask Me Anything", Table 1, printed there
as accuracies (error = 100 - accuracy): its mean accuracy (93.6) and its 18 passed tasks match
docs/reproduction.md. EntNet (Henaff et al. 2017, Table 2) and QRN (the authors' README): see their rows.
"""

from __future__ import annotations


def _per_task(errors: list[float]) -> dict[int, float]:
    """Tasks 1..20 -> error; a row without exactly 20 numbers is a transcription mistake."""
    if len(errors) != 20:
        raise ValueError(f"a published row has {len(errors)} numbers, not 20")
    return dict(zip(range(1, 21), errors))


MEMN2N_PE_LS_RN = _per_task([
    0.0, 8.3, 40.3, 2.8, 13.1, 7.6, 17.3, 10.0, 13.2, 15.1,
    0.9, 0.2, 0.4, 1.7, 0.0, 1.3, 51.0, 11.1, 82.8, 0.0])
MEMN2N_PE_LS_RN_JOINT = _per_task([
    0.0, 11.4, 21.9, 13.4, 14.4, 2.8, 18.3, 9.3, 1.9, 6.5,
    0.3, 0.1, 0.2, 6.9, 0.0, 2.7, 40.4, 9.4, 88.0, 0.0])

# DMN+ on bAbI-10k (Xiong, Merity & Socher 2016, Table 2), as quoted in docs/reproduction.md.
DMN_PLUS_10K = {t: 0.0 for t in range(1, 21)}
DMN_PLUS_10K.update({2: 0.3, 3: 1.1, 5: 0.5, 7: 2.4, 14: 0.2, 16: 45.3, 17: 4.2, 18: 2.1})

# MemNN, strongly supervised, AM+NG+NL, bAbI-1k (test error %).
MEMNN_STRONG = _per_task([
    0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 15.0, 9.0, 0.0, 2.0,
    0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 35.0, 5.0, 64.0, 0.0])

# LSTM, weakly supervised, bAbI-1k (test error %).
LSTM_1K = _per_task([
    50.0, 80.0, 80.0, 39.0, 30.0, 52.0, 51.0, 55.0, 36.0, 56.0,
    38.0, 26.0, 6.0, 73.0, 79.0, 77.0, 49.0, 48.0, 92.0, 9.0])

# DMN, strongly supervised, bAbI-1k (test error %).
DMN_1K = _per_task([
    0.0, 1.8, 4.8, 0.0, 0.7, 0.0, 3.1, 3.5, 0.0, 2.5,
    0.1, 0.0, 0.2, 0.0, 0.0, 0.6, 40.4, 4.7, 65.5, 0.0])

# EntNet on bAbI-10k, per task (Henaff et al. 2017, Table 2; the same 20 numbers in the README of
# jimfleming/recurrent-entity-networks): mean 0.5, no failed task.
ENTNET_10K = _per_task([
    0.0, 0.1, 4.1, 0.0, 0.3, 0.2, 0.0, 0.5, 0.1, 0.6,
    0.3, 0.0, 1.3, 0.0, 0.0, 0.2, 0.5, 0.3, 2.3, 0.0])

# QRN (Seo et al. 2017): the paper's per-task table (its appendix) was not available to us. The authors'
# README (seominjoon/qrn, June 2016) gives the "2rb" model's bAbI-1k errors on tasks 2-5 and the mean
# 9.9; its later README gives the 10k mean 0.3. Tasks without a published number are left out.
QRN_1K = {2: 0.7, 3: 5.7, 4: 0.0, 5: 1.1}
QRN_10K: dict[int, float] = {}

# (model, set, joint) -> (row label, per-task errors, published mean, published failed tasks or None)
ROWS = {
    ("memn2n", "en", False): ("MemN2N PE LS RN (paper)", MEMN2N_PE_LS_RN, 13.9, 11),
    ("memn2n", "en", True): ("MemN2N PE LS RN joint (paper)", MEMN2N_PE_LS_RN_JOINT, 12.4, 11),
    ("dmn+", "en-10k", False): ("DMN+ (paper)", DMN_PLUS_10K, 2.8, 1),
    ("memnn", "en", False): ("MemNN AM+NG+NL, strongly supervised (paper)", MEMNN_STRONG, 6.7, 4),
    ("lstm", "en", False): ("LSTM (paper)", LSTM_1K, 51.3, 20),
    ("dmn", "en", False): ("DMN, strongly supervised (paper)", DMN_1K, 6.4, 2),
    ("qrn", "en", False): ("QRN 2rb (authors' README: tasks 2-5 and the mean)", QRN_1K, 9.9, None),
    ("qrn", "en-10k", False): ("QRN (authors' README: the mean)", QRN_10K, 0.3, 0),
    ("entnet", "en-10k", False): ("EntNet (paper)", ENTNET_10K, 0.5, 0),
}


def reference(model: str, set_name: str, joint: bool):
    """The published row for this setting, or None. A row may lack tasks (QRN's): ``row.get(t)``."""
    return ROWS.get((model, set_name, joint))
