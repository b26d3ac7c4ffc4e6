"""Optimizers for SSM models: the SSM parameters on their own learning rate, without weight decay.

The reference S4/S4D training gives the SSM parameters (A, dt, B) a smaller learning rate and no
weight decay. Keras has no per-variable learning rate, so :class:`SSMAdamW` scales the learning rate
inside ``update_step`` for the SSM variables (those the S4/S4D layers mark when they are built, or those
named by path), and excludes them from the decoupled weight decay with Keras'
``exclude_from_weight_decay(var_list=...)`` when it is built. ``update_step`` is the hook every backend's training step goes through, including the JAX
trainer's ``stateless_apply`` (which runs ``apply`` on the real ``keras.Variable`` objects inside a
``StatelessScope``).
"""

import math

import keras

from keras_ssm.discovery import find_ssm_layers, is_marked_ssm_variable


@keras.saving.register_keras_serializable(package="keras_ssm")
class SSMAdamW(keras.optimizers.AdamW):
    """Keras' AdamW where the SSM variables use ``ssm_lr_scale * learning_rate`` and no weight decay.

    For an ordinary variable ``w`` with gradient ``g`` at step ``t`` (learning rate ``lr_t`` from the
    schedule), the update is Keras AdamW's:

        w <- w - lr_t * weight_decay * w                         (decoupled weight decay)
        w <- w - lr_t * sqrt(1 - b2^t) / (1 - b1^t) * m_t / (sqrt(v_t) + eps)

    For an SSM variable the decay step is skipped and ``lr_t`` is replaced by ``ssm_lr_scale * lr_t``,
    so with a warmup + cosine schedule peaking at ``lr`` the SSM variables follow the same schedule
    shape peaking at ``ssm_lr = ssm_lr_scale * lr``.

    The SSM variables are ``layer.ssm_variables`` of every S4/S4D layer among the variables the optimizer
    is built with (those of the model it is compiled with): nothing to pass. ``ssm_variable_paths``
    names them explicitly instead (``variable.path``, see :func:`ssm_variable_paths`).

    Args:
        learning_rate, weight_decay, *args: Keras AdamW's, in its order.
        ssm_lr_scale: ratio ``ssm_lr / lr`` (> 0); the reference S4 setting is lr 0.01, ssm_lr 0.001,
            so 0.1.
        ssm_variable_paths: None (the default): every S4/S4D layer's ``ssm_variables``; or the
            ``variable.path`` of each SSM variable.
        **kwargs: the other keyword arguments of ``keras.optimizers.AdamW``.

    Example:

    ```python
    model.compile(optimizer=keras_ssm.SSMAdamW(0.01, weight_decay=0.05, ssm_lr_scale=0.1),
                  loss="sparse_categorical_crossentropy")
    ```
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, *args, ssm_lr_scale=1.0, ssm_variable_paths=None,
                 **kwargs):
        if isinstance(learning_rate, (list, tuple)):
            raise ValueError(
                f"`learning_rate` (SSMAdamW's first argument, as in keras.optimizers.AdamW) must be a float, a "
                f"LearningRateSchedule or a callable, got {learning_rate!r}. Variable paths go to "
                f"`ssm_variable_paths=` (or leave them out: the SSM variables are found by themselves)."
            )
        super().__init__(learning_rate, weight_decay, *args, **kwargs)
        if ssm_variable_paths is not None and (isinstance(ssm_variable_paths, str) or not all(
                isinstance(p, str) for p in ssm_variable_paths)):
            raise ValueError(f"`ssm_variable_paths` must be None or a list of variable paths, got "
                             f"{ssm_variable_paths!r}.")
        if isinstance(ssm_lr_scale, bool) or not isinstance(ssm_lr_scale, (int, float)) or not math.isfinite(
                ssm_lr_scale) or ssm_lr_scale <= 0:
            raise ValueError(f"`ssm_lr_scale` must be a finite number > 0, got {ssm_lr_scale!r}.")
        self.ssm_variable_paths = None if ssm_variable_paths is None else tuple(ssm_variable_paths)
        self.ssm_lr_scale = float(ssm_lr_scale)
        self._excluded = ((), ())  # the caller's own exclude_from_weight_decay(var_list, var_names)
        self._ssm_var_keys = frozenset()

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Keras' ``exclude_from_weight_decay``; the SSM variables are excluded too, whatever is passed here."""
        self._excluded = (tuple(var_list or ()), tuple(var_names or ()))
        super().exclude_from_weight_decay(var_list=var_list, var_names=var_names)

    def build(self, var_list):
        if self.ssm_variable_paths is None:
            ssm_variables = [v for v in var_list if is_marked_ssm_variable(v)]
        else:
            paths = set(self.ssm_variable_paths)
            ssm_variables = [v for v in var_list if v.path in paths]
        # Backends hand update_step different objects for the same variable (a keras.Variable, or the
        # tf.Variable inside it on TensorFlow); _var_key (as Keras' own weight-decay exclusion) maps both to one key.
        self._ssm_var_keys = frozenset(self._var_key(v) for v in ssm_variables)
        own_list, own_names = self._excluded
        super().exclude_from_weight_decay(var_list=[*own_list, *ssm_variables], var_names=list(own_names) or None)
        super().build(var_list)

    def is_ssm_variable(self, variable) -> bool:
        """Whether ``variable`` (one the optimizer was built with) gets the SSM learning rate and no decay."""
        return self._var_key(variable) in self._ssm_var_keys

    def update_step(self, gradient, variable, learning_rate):
        if self.is_ssm_variable(variable):
            learning_rate = learning_rate * self.ssm_lr_scale
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        paths = None if self.ssm_variable_paths is None else list(self.ssm_variable_paths)
        config.update({"ssm_variable_paths": paths, "ssm_lr_scale": self.ssm_lr_scale})
        return config


def ssm_variable_paths(model):
    """Paths of the SSM variables (``layer.ssm_variables`` of every S4/S4D layer) of a built model."""
    paths = []
    for layer in find_ssm_layers(model).values():
        paths.extend(v.path for v in layer.ssm_variables if v.path not in paths)
    return paths
