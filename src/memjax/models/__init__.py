"""Model families, each implementing the one interface of :mod:`memjax.models.base`."""

from memjax.models.base import Model, Phase, Prediction, Traits
from memjax.models.dialog import DialogConfig, DialogEmbeddings, DialogMemN2N, EmbeddingsConfig
from memjax.models.entnet import EntNet, EntNetConfig
from memjax.models.dmn import DMN, DMNConfig, DMNPlus, DMNPlusConfig
from memjax.models.lstm import AttnLSTM, AttnLSTMConfig, LSTMConfig, LSTMReader
from memjax.models.memn2n import MemN2N, MemN2NConfig, MemN2NRecipe
from memjax.models.memnn import MemNN, MemNNConfig
from memjax.models.qrn import QRN, QRNConfig

# --model name -> (model class, config class)
FAMILIES = {"memn2n": (MemN2N, MemN2NConfig), "dmn": (DMN, DMNConfig), "dmn+": (DMNPlus, DMNPlusConfig),
            "memnn": (MemNN, MemNNConfig),
            "lstm": (LSTMReader, LSTMConfig), "attn-lstm": (AttnLSTM, AttnLSTMConfig),
            "qrn": (QRN, QRNConfig), "entnet": (EntNet, EntNetConfig),
            "memn2n-dialog": (DialogMemN2N, DialogConfig), "embeddings-dialog": (DialogEmbeddings, EmbeddingsConfig)}
# the families of dialog bAbI (``--set dialog``): they answer with candidate utterances
DIALOG_FAMILIES = ("memn2n-dialog", "embeddings-dialog")


def model_for(name: str, config: dict):
    """The model of family ``name`` built from its config as a dict (as saved with a trained model)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model {name!r}: choose from {', '.join(FAMILIES)}")
    model, cfg = FAMILIES[name]
    return model(cfg(**config))


__all__ = ["Model", "Phase", "Prediction", "Traits", "AttnLSTM", "AttnLSTMConfig", "DIALOG_FAMILIES", "DialogConfig", "DialogEmbeddings", "DialogMemN2N", "EmbeddingsConfig", "DMN", "DMNConfig", "DMNPlus", "DMNPlusConfig", "EntNet", "EntNetConfig", "FAMILIES", "LSTMConfig",
           "LSTMReader", "MemN2N", "MemN2NConfig", "MemN2NRecipe", "MemNN", "MemNNConfig", "QRN", "QRNConfig", "model_for"]
