"""The regularizers, one module per conf/reg/ option, and what they share.

    conf/reg/_base.yaml       places.py         where a model calls a regularizer: Places, given to every model
                              combination.py    the options a reg node combines: their label, whether they combine
    conf/reg/dropout*.yaml                      Paddle's own nn.Dropout and nn.Dropout2D
    conf/reg/dropblock.yaml   dropblock.py      drop_block_2d(), under DropBlock; placed_dropblock for block places
    conf/reg/droppath.yaml    droppath.py       drop_path(), under DropPath
    conf/reg/cutout.yaml      cutout.py         Cutout
    conf/reg/mixup.yaml       mixup.py          Mixup
    conf/reg/cutmix.yaml      cutmix.py         CutMix
    what the trainer calls    progress.py       FollowsProgress: layers whose strength follows training progress
                              batch.py          BatchRegs: reg.batch's transforms of each training batch
                              draws.py          the batch transforms' random draws, made ahead on the host
                              box.py            the clipped box and its λ, shared by Cutout and CutMix
                              mixed_targets.py  labels mixed by λ (mixup, cutmix): their loss and train accuracy
"""
